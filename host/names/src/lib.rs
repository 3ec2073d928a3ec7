//! The names the host and the first-party providers share: the setting keys a
//! backend's preset writes and its provider reads through `config`, and the
//! credential names the preset configures in the `http` grant and the provider
//! splices or keeps. One constant each, so host and guest cannot drift apart.
//! Dependency-free: it compiles for wasm32 guests as it is.
#![no_std]
#![deny(missing_docs)]

/// Settings every http provider may take.
pub mod common {
    /// How many pages one `list` call may read from a backend that lists
    /// everything at once (a budget of requests).
    pub const MAX_LIST_PAGES: &str = "max-list-pages";
    /// A backend's API endpoint, when not its public one.
    pub const ENDPOINT: &str = "endpoint";
    /// An OAuth2 access token, kept from the login answer by the grant.
    pub const ACCESS_TOKEN: &str = "access-token";
}

/// The `openbao` provider (OpenBao / Vault KV version 2).
pub mod openbao {
    /// Setting: the server's origin.
    pub const ADDRESS: &str = "address";
    /// Setting: the KV version 2 mount (default `secret`).
    pub const MOUNT: &str = "mount";
    /// Setting: an OpenBao / Vault Enterprise namespace.
    pub const NAMESPACE: &str = "namespace";
    /// Setting: `true` to keep old versions on delete.
    pub const SOFT_DELETE: &str = "soft-delete";
    /// Setting: `approle`, or absent for a token.
    pub const AUTH: &str = "auth";
    /// The `auth` value for AppRole.
    pub const AUTH_APPROLE: &str = "approle";
    /// Setting: the AppRole role id.
    pub const ROLE_ID: &str = "role-id";
    /// Credential: the token.
    pub const TOKEN: &str = "token";
    /// Credential: the AppRole secret id.
    pub const SECRET_ID: &str = "secret-id";
    /// Credential kept from an AppRole login: the session token.
    pub const SESSION: &str = "session";
}

/// The `kubernetes` provider (Secrets in a namespace).
pub mod kubernetes {
    /// Setting: the API server's origin.
    pub const SERVER: &str = "server";
    /// Setting: the namespace (default `default`).
    pub const NAMESPACE: &str = "namespace";
    /// Credential: the bearer token.
    pub const TOKEN: &str = "token";
}

/// The `azure-key-vault` provider.
pub mod azure {
    /// Setting: the authority (login) origin.
    pub const AUTHORITY: &str = "authority";
    /// Setting: the directory (tenant) id.
    pub const TENANT_ID: &str = "tenant-id";
    /// Setting: the application (client) id.
    pub const CLIENT_ID: &str = "client-id";
    /// Setting: the OAuth2 scope asked for.
    pub const SCOPE: &str = "scope";
    /// Setting: days after which a written version expires.
    pub const EXPIRES_AFTER_DAYS: &str = "expires-after-days";
    /// Setting: `false` to leave deleted secrets soft-deleted.
    pub const PURGE: &str = "purge";
    /// Setting: the vault's origin.
    pub const VAULT_URL: &str = "vault-url";
    /// Credential: the client secret, spliced into the login form.
    pub const CLIENT_SECRET: &str = "client-secret";
}

/// The `gcp-secret-manager` provider.
pub mod gcp {
    /// Setting: the project id.
    pub const PROJECT_ID: &str = "project-id";
    /// Setting: the token endpoint (a service account key's `token_uri`).
    pub const TOKEN_URL: &str = "token-url";
    /// Credential: the JWT assertion the host signs afresh at each splice.
    pub const ASSERTION: &str = "assertion";
    /// Credential: a plain bearer token, instead of a service account.
    pub const TOKEN: &str = "token";
}
