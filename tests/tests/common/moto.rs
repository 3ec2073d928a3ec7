//! A moto server (PyPI `moto[server]`) on a free loopback port, owned by one test
//! and stopped when dropped; and boto3 run the way OpenMetadata's Python side runs.

use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use secret_broker::SecretValue;
use secret_broker_aws::AwsSettings;

pub const REGION: &str = "us-east-1";

pub struct Moto {
    _server: super::Server,
    pub url: String,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = super::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (tests/setup installs moto[server])");
        // Owned from here: a panic below stops it through Drop.
        let moto = Moto {
            _server: super::Server(child),
            url: format!("http://127.0.0.1:{port}"),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Settings for a grant on this moto, scoped to `prefix`.
    pub fn settings(&self, prefix: &str) -> AwsSettings {
        let mut s = AwsSettings::new(prefix);
        s.region = Some(REGION.into());
        s.access_key_id = Some("testing".into());
        s.secret_access_key = Some(SecretValue::from_string("testing".into()));
        s.endpoint = Some(self.url.clone());
        s.writes_per_second = 1000;
        s
    }

    /// Runs a Python snippet with boto3 clients `sm` and `ssm` on this moto.
    pub fn boto3(&self, body: &str, args: &[&str]) -> Output {
        let script = format!(
            "import sys, boto3\n\
             kw = dict(region_name='{REGION}', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             sm = boto3.client('secretsmanager', **kw)\n\
             ssm = boto3.client('ssm', **kw)\n\
             {body}\n",
            self.url
        );
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("python3 with boto3")
    }
}
