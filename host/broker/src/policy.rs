//! Who may see and change secrets: a role table kept in the host, never in a
//! provider. The default follows OpenMetadata's seed behaviour: only admins
//! retrieve or edit connection parameters; users and bots see secret fields masked.
//! Newer OpenMetadata versions unmask for bots: set `bot.reveal = true` for that.

use serde::{Deserialize, Serialize};

/// What a masked secret field shows, as OpenMetadata shows it.
pub const MASK: &str = "*********";

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Operators and the metadata server acting for an admin.
    Admin,
    /// Every other person.
    User,
    /// Ingestion bots and other automation.
    Bot,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Admin, Role::User, Role::Bot];

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Bot => "bot",
        }
    }

    /// The role of a name, if it is one.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// See secret values (get, resolve, decrypt unmasked).
    #[serde(default)]
    pub reveal: bool,
    /// Create, change and delete secrets (put, delete, encrypt).
    #[serde(default)]
    pub write: bool,
}

/// The role table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Admins.
    #[serde(default = "admin_default")]
    pub admin: Permissions,
    /// Users.
    #[serde(default)]
    pub user: Permissions,
    /// Bots.
    #[serde(default)]
    pub bot: Permissions,
}

fn admin_default() -> Permissions {
    Permissions {
        reveal: true,
        write: true,
    }
}

impl Default for Policy {
    /// The seed document's policy: admins only.
    fn default() -> Self {
        Policy {
            admin: admin_default(),
            user: Permissions::default(),
            bot: Permissions::default(),
        }
    }
}

impl Policy {
    /// The permissions of `role`.
    pub fn of(&self, role: Role) -> Permissions {
        match role {
            Role::Admin => self.admin,
            Role::User => self.user,
            Role::Bot => self.bot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_seed_policy() {
        let p = Policy::default();
        assert!(p.of(Role::Admin).reveal && p.of(Role::Admin).write);
        for role in [Role::User, Role::Bot] {
            assert!(!p.of(role).reveal && !p.of(role).write, "{role}");
        }
        assert_eq!(MASK, "*********");
    }

    #[test]
    fn bots_can_be_unmasked_by_configuration() {
        let p: Policy = toml::from_str("[bot]\nreveal = true\n").unwrap();
        assert!(p.of(Role::Bot).reveal);
        assert!(!p.of(Role::Bot).write);
        assert!(p.of(Role::Admin).write, "unset roles keep their defaults");
        assert!(toml::from_str::<Policy>("[bot]\nrevael = true\n").is_err());
    }
}
