//! Which addresses a grant may connect to, and the resolver that checks every
//! address a name resolves to before reqwest may connect to any of them.

use std::net::{IpAddr, SocketAddr};

/// What kind of address an IP is, as far as the grant's policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// A public unicast address: always allowed.
    Public,
    /// Loopback, private (RFC 1918, unique local), link-local or shared (CGNAT):
    /// allowed only when the grant says `allow_private`.
    Private,
    /// Unspecified, multicast, broadcast or reserved: never connected to.
    Never,
}

/// The kind of `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
pub fn classify(ip: IpAddr) -> AddressKind {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || a == 0 || a >= 240 {
                AddressKind::Never
            } else if v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
            {
                AddressKind::Private
            } else {
                AddressKind::Public
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_unspecified() || v6.is_multicast() {
                AddressKind::Never
            } else if v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 {
                AddressKind::Private
            } else {
                AddressKind::Public
            }
        }
    }
}

/// Why an address may not be connected to, or `None` if it may.
pub(crate) fn refusal(host: &str, ip: IpAddr, allow_private: bool) -> Option<Refused> {
    match classify(ip) {
        AddressKind::Public => None,
        AddressKind::Private if allow_private => None,
        kind => Some(Refused::Address {
            host: host.to_owned(),
            ip,
            kind,
        }),
    }
}

/// A refusal raised inside reqwest (resolver, redirect policy), found again in
/// the error's source chain to give the provider a clear message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// The name resolved to an address the grant does not allow.
    #[error("{host} resolves to {ip}, {}", describe(*kind))]
    Address {
        host: String,
        ip: IpAddr,
        kind: AddressKind,
    },
    /// A redirect left the origin.
    #[error(
        "the backend redirected to {to}, another origin than {from}: redirects are followed \
         within the origin only"
    )]
    CrossOrigin { from: String, to: String },
    /// Too many redirects.
    #[error("more than {0} redirects")]
    Redirects(usize),
    /// The name did not resolve.
    #[error("{host} does not resolve: {message}")]
    Unresolved { host: String, message: String },
}

fn describe(kind: AddressKind) -> &'static str {
    match kind {
        AddressKind::Private => {
            "a loopback or private address: refused (the http grant reaches those only with \
             `allow_private = true`)"
        }
        AddressKind::Never => "an address no request is ever sent to",
        AddressKind::Public => "a public address",
    }
}

/// Resolves with the system resolver and refuses a name any of whose addresses
/// the grant does not allow, so a name cannot point reqwest at a refused address.
pub(crate) struct CheckedResolver {
    pub(crate) allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Refused::Unresolved {
                    host: host.clone(),
                    message: e.to_string(),
                })?
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused::Unresolved {
                    host,
                    message: "no addresses".into(),
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            for addr in &addrs {
                if let Some(refused) = refusal(&host, addr.ip(), allow_private) {
                    return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let kind = |s: &str| classify(s.parse().unwrap());
        assert_eq!(kind("127.0.0.1"), AddressKind::Private);
        assert_eq!(kind("10.1.2.3"), AddressKind::Private);
        assert_eq!(kind("172.16.0.1"), AddressKind::Private);
        assert_eq!(kind("192.168.1.1"), AddressKind::Private);
        assert_eq!(kind("169.254.169.254"), AddressKind::Private);
        assert_eq!(kind("100.64.0.1"), AddressKind::Private);
        assert_eq!(kind("::1"), AddressKind::Private);
        assert_eq!(kind("fd00::1"), AddressKind::Private);
        assert_eq!(kind("fe80::1"), AddressKind::Private);
        assert_eq!(kind("::ffff:127.0.0.1"), AddressKind::Private);
        assert_eq!(kind("0.0.0.0"), AddressKind::Never);
        assert_eq!(kind("::"), AddressKind::Never);
        assert_eq!(kind("224.0.0.1"), AddressKind::Never);
        assert_eq!(kind("255.255.255.255"), AddressKind::Never);
        assert_eq!(kind("93.184.216.34"), AddressKind::Public);
        assert_eq!(kind("2606:4700::1111"), AddressKind::Public);
        assert!(refusal("h", "127.0.0.1".parse().unwrap(), true).is_none());
        assert!(refusal("h", "127.0.0.1".parse().unwrap(), false).is_some());
        assert!(refusal("h", "0.0.0.0".parse().unwrap(), true).is_some());
    }
}
