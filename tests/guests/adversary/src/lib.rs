//! A hostile provider for the sandbox tests. `get(id)` misbehaves according to the
//! id's last segment; `list("/huge")` returns far more than the host accepts; any
//! other call behaves like a tiny well-mannered provider.

use secret_broker_guest_sdk::{
    Error, IdRules, ListPage, Provider, ProviderInfo, PutOptions, PutOutcome, Secret,
    export_provider, log,
};

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

impl Provider for Adversary {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "adversary".into(),
            version: "0.0.1".into(),
            id_rules: IdRules::slash_separated(256, 1024),
            stateful: false,
        }
    }

    fn put(_id: String, _value: Secret, _options: PutOptions) -> Result<PutOutcome, Error> {
        Ok(PutOutcome::Created)
    }

    fn get(id: String) -> Result<Option<Secret>, Error> {
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
            _ => Ok(None),
        }
    }

    fn delete(_id: String) -> Result<bool, Error> {
        Ok(false)
    }

    fn list(prefix: String, _cursor: Option<String>, _limit: u32) -> Result<ListPage, Error> {
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

export_provider!(Adversary);
