//! A hostile provider for the sandbox tests, granted nothing. `get(id)` and
//! `put(id)` misbehave according to the id's last segment; `list` according to
//! its prefix; `info()` according to the setting `info`; any other call behaves
//! like a tiny well-mannered provider.

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions, PutOutcome, Secret, config,
    export_provider, log,
};

/// Tries every 4-digit PIN against `target` with `equals`: the oracle a provider
/// without `reveal` must not have. Returns the PIN spelled with dashes (so the
/// scrubber, which knows the value, would not catch it in an error).
fn crack_pin(target: &Secret) -> Option<String> {
    (0..10_000).find_map(|n| {
        let guess = Secret::new(format!("{n:04}").as_bytes());
        target.equals(&guess).then(|| {
            format!("{n:04}")
                .chars()
                .map(String::from)
                .collect::<Vec<_>>()
                .join("-")
        })
    })
}

struct Adversary;

/// Opens a TCP connection through `wasi:sockets` (wasi-libc here has no BSD
/// sockets for wasip2, so the interface is called directly).
fn connect(port: &str) -> Result<(), String> {
    use wasip2::sockets::instance_network::instance_network;
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasip2::sockets::tcp_create_socket::create_tcp_socket;

    let port: u16 = port.parse().map_err(|_| "bad port".to_string())?;
    let network = instance_network();
    let socket = create_tcp_socket(IpAddressFamily::Ipv4).map_err(|e| format!("create: {e:?}"))?;
    let addr = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    socket
        .start_connect(&network, addr)
        .map_err(|e| format!("connect: {e:?}"))?;
    socket.subscribe().block();
    socket
        .finish_connect()
        .map(|_| ())
        .map_err(|e| format!("connect: {e:?}"))
}

fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

impl Adversary {
    fn info() -> ProviderInfo {
        let mut info = ProviderInfo {
            name: "adversary".into(),
            version: "0.0.1".into(),
            id_rules: IdRules::slash_separated(256, 1024),
            stateful: false,
        };
        match config::get("info").as_deref() {
            Some("zero-max") => info.id_rules.max_id_len = 0,
            Some("huge-value") => info.id_rules.max_value_bytes = u64::MAX,
            Some("escape-name") => info.name = "adversary\x1b[2K\rneeds grants: none".into(),
            Some("many-prefixes") => {
                info.id_rules.forbidden_prefixes = (0..5000).map(|i| format!("{i:0>100}")).collect()
            }
            Some("bad-class") => info.id_rules.allowed_chars = "z-a".into(),
            _ => {}
        }
        info
    }
}

impl Provider for Adversary {
    fn new() -> Result<Self, Error> {
        Ok(Adversary)
    }

    fn put(&self, id: &str, value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        let id = id.to_owned();
        match last_segment(&id) {
            "oracle" => match crack_pin(&value) {
                Some(pin) => Err(Error::Backend(format!("cracked: {pin}"))),
                None => Err(Error::Backend("not a 4-digit pin".into())),
            },
            // Guesses in a log line: the scrubber must not answer which one matched.
            "guess-log" => {
                let guesses: Vec<String> = (0..10_000).map(|n| format!("{n:04}")).collect();
                log::info(&guesses.join(" "));
                Ok(PutOutcome::Created)
            }
            "guess-error" => {
                let guesses: Vec<String> = (0..10_000).map(|n| format!("{n:04}")).collect();
                Err(Error::Backend(guesses.join(" ")))
            }
            _ => Ok(PutOutcome::Created),
        }
    }

    fn get(&self, id: &str) -> Result<Option<Secret>, Error> {
        let id = id.to_owned();
        match last_segment(&id) {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("adversary panicked on purpose"),
            "read-file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => Ok(Some(Secret::new(text.as_bytes()))),
                Err(e) => Err(Error::Backend(format!("read-file: {e}"))),
            },
            "env" => match std::env::var("HOME").or_else(|_| std::env::var("PATH")) {
                Ok(v) => Ok(Some(Secret::new(v.as_bytes()))),
                Err(e) => Err(Error::Backend(format!(
                    "env: {e}; vars visible: {}",
                    std::env::vars().count()
                ))),
            },
            "args" => Err(Error::Backend(format!(
                "args: {}",
                std::env::args().count()
            ))),
            tcp if tcp.starts_with("tcp-") => match connect(&tcp[4..]) {
                Ok(()) => Ok(Some(Secret::new(b"connected"))),
                Err(e) => Err(Error::Backend(format!("tcp: {e}"))),
            },
            "log-flood" => {
                let line = "x".repeat(2 << 20);
                log::info(&line);
                Ok(None)
            }
            "print" => {
                println!("adversary says hello on stdout");
                Ok(None)
            }
            // Its own values it may compare freely.
            "equal-own" => {
                let (a, b) = (Secret::new(b"same"), Secret::new(b"same"));
                Ok(a.equals(&b).then(|| a.clone()))
            }
            "clone-drop" => {
                let s = Secret::new(b"cloned over and over");
                for _ in 0..10_000_000 {
                    drop(s.clone());
                }
                Ok(None)
            }
            "empty-logs" => {
                for _ in 0..50_000_000 {
                    log::info("");
                }
                Ok(None)
            }
            // Secrets that spell pieces of the scrubber's marker, then the marker.
            "marker" => {
                let marker = "[redacted]";
                let mut pieces = Vec::new();
                for start in 0..marker.len() {
                    for end in start + 1..=marker.len() {
                        pieces.push(Secret::new(&marker.as_bytes()[start..end]));
                    }
                }
                log::info(marker);
                Err(Error::Backend(format!("{marker} {marker}")))
            }
            "big-error" => Err(Error::Backend("e".repeat(8 << 20))),
            "forge" => {
                log::warn("all good\n2026-11-30T00:00:00Z  INFO secret_broker: forged entry");
                Err(Error::Backend(
                    "refused\n\x1b[2Jerror: nothing happened \u{202e}".into(),
                ))
            }
            _ => Ok(None),
        }
    }

    fn delete(&self, _id: &str) -> Result<bool, Error> {
        Ok(false)
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, _limit: u32) -> Result<ListPage, Error> {
        let prefix = prefix.to_owned();
        let cursor = cursor.map(str::to_owned);
        match prefix.as_str() {
            "/empty-ids" => {
                return Ok(ListPage {
                    ids: vec![String::new(); 100_000],
                    next_cursor: None,
                });
            }
            // The same cursor forever.
            "/stuck" => {
                return Ok(ListPage {
                    ids: Vec::new(),
                    next_cursor: Some("/stuck/a".into()),
                });
            }
            // A cursor that goes back.
            "/backwards" => {
                let next = match cursor.as_deref() {
                    None => "/backwards/m",
                    _ => "/backwards/a",
                };
                return Ok(ListPage {
                    ids: Vec::new(),
                    next_cursor: Some(next.into()),
                });
            }
            _ => {}
        }
        if prefix == "/huge" {
            // 40,000 ids of 200 bytes: 8 MB, within the memory limit but far over
            // what the host accepts as one page.
            let ids = (0..40_000).map(|i| format!("/huge/{i:0>194}")).collect();
            return Ok(ListPage {
                ids,
                next_cursor: None,
            });
        }
        Ok(ListPage {
            ids: Vec::new(),
            next_cursor: None,
        })
    }
}

export_provider!(Adversary, info: Adversary::info());
