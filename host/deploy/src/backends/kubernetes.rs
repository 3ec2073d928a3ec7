//! The built-in `kubernetes` provider configured as OpenMetadata configures its
//! Kubernetes secrets manager: `SECRET_MANAGER=kubernetes` with
//! `OM_SM_NAMESPACE`, `OM_SM_KUBECONFIG_PATH`, `OM_SM_IN_CLUSTER` (or the
//! `parameters` `namespace`, `kubeconfigPath`, `inCluster`; `[kubernetes]` in
//! TOML, `secretBroker.kubernetes` in YAML). The API server, its CA and the
//! bearer token come from the kubeconfig (its current context) or, in a pod, from
//! the service account; the token reaches the provider only as a credential it
//! splices into requests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde::Deserialize;

use secret_broker_names as names;

use secret_broker::SecretValue;

use super::http::{CredentialSource, HttpConfig};

/// Where a pod's service account is mounted.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `[kubernetes]`, OpenMetadata's `parameters` for `kubernetes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The namespace of the Secrets (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// A kubeconfig file; its current context gives the server, CA and token.
    #[serde(default, alias = "kubeconfigPath")]
    pub kubeconfig_path: Option<PathBuf>,
    /// Use the pod's service account (`KUBERNETES_SERVICE_HOST`, its token and CA).
    #[serde(default, alias = "inCluster", deserialize_with = "bool_or_text")]
    pub in_cluster: bool,
    /// OpenMetadata's test switch; accepted and ignored.
    #[serde(
        default,
        rename = "skip_init",
        alias = "skipInit",
        deserialize_with = "bool_or_text"
    )]
    _skip_init: bool,
}

/// OpenMetadata writes booleans as text in its YAML (`inCluster: "false"`).
fn bool_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Text(t) => t.trim().eq_ignore_ascii_case("true"),
    })
}

/// The API server and how to reach it.
struct Cluster {
    server: String,
    ca_file: Option<PathBuf>,
    ca_pem: Option<Vec<u8>>,
    token: CredentialSource,
}

impl KubernetesConfig {
    /// OpenMetadata's variables win over the file.
    pub fn overlay_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        if let Some(ns) = get("OM_SM_NAMESPACE") {
            self.namespace = Some(ns);
        }
        if let Some(path) = get("OM_SM_KUBECONFIG_PATH") {
            self.kubeconfig_path = Some(PathBuf::from(path));
        }
        if let Some(flag) = get("OM_SM_IN_CLUSTER") {
            self.in_cluster = flag.trim().eq_ignore_ascii_case("true");
        }
    }

    /// The provider's settings and its http grant.
    pub fn provider(&self) -> anyhow::Result<(BTreeMap<String, String>, HttpConfig)> {
        let cluster = if self.in_cluster {
            in_cluster(
                Path::new(SERVICE_ACCOUNT),
                std::env::var("KUBERNETES_SERVICE_HOST").ok(),
                std::env::var("KUBERNETES_SERVICE_PORT").ok(),
            )?
        } else {
            let path = match &self.kubeconfig_path {
                Some(p) => p.clone(),
                None => default_kubeconfig()?,
            };
            from_kubeconfig(&path)?
        };
        let origin = origin_of(&cluster.server)?;
        let mut settings = BTreeMap::new();
        settings.insert(names::kubernetes::SERVER.to_owned(), cluster.server.clone());
        // As OpenMetadata: the configured namespace or `default`, never the
        // kubeconfig context's.
        let namespace = self
            .namespace
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "default".into());
        settings.insert(names::kubernetes::NAMESPACE.into(), namespace);
        let mut credentials = BTreeMap::new();
        credentials.insert(names::kubernetes::TOKEN.to_owned(), cluster.token);
        let http = HttpConfig {
            origins: vec![origin],
            // The API server's address comes from the kubeconfig or the pod,
            // which the operator controls; clusters sit on private addresses.
            allow_private: true,
            ca_file: cluster.ca_file,
            ca_pem: cluster.ca_pem,
            credentials,
            ..HttpConfig::default()
        };
        Ok((settings, http))
    }
}

/// `scheme://host:port` of a server URL (which may carry a path).
fn origin_of(server: &str) -> anyhow::Result<String> {
    Ok(super::http::origin_and_path("the Kubernetes API server", server)?.0)
}

/// The kubeconfig clients use when none is named: `$KUBECONFIG` (its first
/// file), else `~/.kube/config`.
fn default_kubeconfig() -> anyhow::Result<PathBuf> {
    if let Some(first) = std::env::var("KUBECONFIG")
        .ok()
        .and_then(|k| k.split(':').find(|p| !p.is_empty()).map(PathBuf::from))
    {
        return Ok(first);
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".kube/config")),
        None => bail!(
            "no kubeconfig: set OM_SM_KUBECONFIG_PATH (or `kubeconfigPath`), or \
             OM_SM_IN_CLUSTER=true in a pod"
        ),
    }
}

/// A pod's service account: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
/// the token and CA mounted in `dir`.
fn in_cluster(dir: &Path, host: Option<String>, port: Option<String>) -> anyhow::Result<Cluster> {
    let (Some(host), Some(port)) = (host, port) else {
        bail!(
            "OM_SM_IN_CLUSTER=true but KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT are \
             not set: run in a pod, or give OM_SM_KUBECONFIG_PATH instead"
        );
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let token = dir.join("token");
    if !token.exists() {
        bail!(
            "OM_SM_IN_CLUSTER=true but {} is missing: mount the service account token",
            token.display()
        );
    }
    Ok(Cluster {
        server: format!("https://{host}:{port}"),
        ca_file: Some(dir.join("ca.crt")),
        ca_pem: None,
        token: CredentialSource {
            file: Some(token),
            env: None,
            origins: None,
            value: None,
        },
    })
}

#[derive(Deserialize)]
struct KubeConfig {
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: KubeContext,
}

#[derive(Deserialize)]
struct KubeContext {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: KubeCluster,
}

#[derive(Deserialize)]
struct KubeCluster {
    server: String,
    #[serde(rename = "certificate-authority", default)]
    certificate_authority: Option<PathBuf>,
    #[serde(rename = "certificate-authority-data", default)]
    certificate_authority_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    user: BTreeMap<String, serde_norway::Value>,
}

/// The current context of the kubeconfig at `path`.
fn from_kubeconfig(path: &Path) -> anyhow::Result<Cluster> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    let config: KubeConfig = serde_norway::from_str(&text)
        .with_context(|| format!("the kubeconfig {} is not valid", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let relative = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    let where_ = || format!("kubeconfig {}", path.display());
    let Some(current) = config.current_context.as_deref().filter(|c| !c.is_empty()) else {
        bail!("{}: no current-context", where_());
    };
    let Some(context) = config.contexts.iter().find(|c| c.name == current) else {
        bail!(
            "{}: the current context {current:?} is not among its contexts",
            where_()
        );
    };
    let context = &context.context;
    let Some(cluster) = config.clusters.iter().find(|c| c.name == context.cluster) else {
        bail!(
            "{}: the cluster {:?} is not among its clusters",
            where_(),
            context.cluster
        );
    };
    let cluster = &cluster.cluster;
    if cluster.insecure_skip_tls_verify {
        bail!(
            "{}: insecure-skip-tls-verify is set for cluster {:?}; the broker always verifies \
             the API server: give certificate-authority(-data)",
            where_(),
            context.cluster
        );
    }
    let ca_pem = match &cluster.certificate_authority_data {
        Some(data) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .with_context(|| {
                    format!("{}: certificate-authority-data is not base64", where_())
                })?,
        ),
        None => None,
    };
    let user_name = context.user.as_deref().unwrap_or_default();
    let Some(user) = config.users.iter().find(|u| u.name == user_name) else {
        bail!(
            "{}: the user {user_name:?} is not among its users",
            where_()
        );
    };
    let text_of = |key: &str| {
        user.user
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let token = if let Some(token) = text_of("token") {
        CredentialSource {
            file: None,
            env: None,
            origins: None,
            value: Some(SecretValue::from_string(token)),
        }
    } else if let Some(file) = text_of("tokenFile") {
        CredentialSource {
            file: Some(relative(Path::new(&file))),
            env: None,
            origins: None,
            value: None,
        }
    } else {
        let kinds: Vec<&str> = user.user.keys().map(String::as_str).collect();
        bail!(
            "{}: user {user_name:?} authenticates with {kinds:?}; the kubernetes provider takes a \
             bearer token (`token` or `tokenFile`): create a service account token for it",
            where_()
        );
    };
    Ok(Cluster {
        server: cluster.server.trim_end_matches('/').to_owned(),
        ca_file: cluster.certificate_authority.as_deref().map(relative),
        ca_pem,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_gives_server_ca_and_token_of_its_current_context() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: prod\n\
             contexts:\n- name: dev\n  context: {cluster: dev, user: dev}\n\
             - name: prod\n  context: {cluster: prod, user: om, namespace: om}\n\
             clusters:\n- name: dev\n  cluster: {server: 'https://dev:6443'}\n\
             - name: prod\n  cluster: {server: 'https://10.0.0.1:6443/', certificate-authority: ca.pem}\n\
             users:\n- name: dev\n  user: {token: dev-token}\n- name: om\n  user: {tokenFile: om.token}\n",
        )?;
        let c = from_kubeconfig(&path)?;
        assert_eq!(c.server, "https://10.0.0.1:6443");
        assert_eq!(c.ca_file, Some(dir.path().join("ca.pem")));
        assert_eq!(c.token.file, Some(dir.path().join("om.token")));
        assert_eq!(origin_of(&c.server)?, "https://10.0.0.1:6443");

        std::fs::write(
            &path,
            "current-context: a\ncontexts: [{name: a, context: {cluster: a, user: a}}]\n\
             clusters: [{name: a, cluster: {server: 'https://a:443', insecure-skip-tls-verify: true}}]\n\
             users: [{name: a, user: {token: t}}]\n",
        )?;
        let err = from_kubeconfig(&path).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("insecure-skip-tls-verify")));

        std::fs::write(
            &path,
            "current-context: a\ncontexts: [{name: a, context: {cluster: a, user: a}}]\n\
             clusters: [{name: a, cluster: {server: 'https://a:443'}}]\n\
             users: [{name: a, user: {exec: {command: aws}}}]\n",
        )?;
        let err = format!(
            "{:#}",
            from_kubeconfig(&path)
                .err()
                .unwrap_or_else(|| anyhow::anyhow!(""))
        );
        assert!(
            err.contains("bearer token") && err.contains("exec"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn in_a_pod_the_service_account_is_used() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let missing = in_cluster(dir.path(), Some("10.96.0.1".into()), Some("443".into()));
        assert!(
            missing
                .err()
                .is_some_and(|e| e.to_string().contains("token is missing"))
        );
        std::fs::write(dir.path().join("token"), "sa-token")?;
        let c = in_cluster(dir.path(), Some("10.96.0.1".into()), Some("443".into()))?;
        assert_eq!(c.server, "https://10.96.0.1:443");
        assert_eq!(c.ca_file, Some(dir.path().join("ca.crt")));
        let no_env = in_cluster(dir.path(), None, None);
        assert!(
            no_env
                .err()
                .is_some_and(|e| e.to_string().contains("KUBERNETES_SERVICE_HOST"))
        );
        Ok(())
    }

    #[test]
    fn openmetadata_variables_win_and_text_booleans_parse() -> anyhow::Result<()> {
        let mut c: KubernetesConfig =
            serde_norway::from_str("namespace: a\ninCluster: \"true\"\nskipInit: false\n")?;
        assert!(c.in_cluster);
        let env: BTreeMap<&str, &str> = [
            ("OM_SM_NAMESPACE", "om"),
            ("OM_SM_KUBECONFIG_PATH", "/k"),
            ("OM_SM_IN_CLUSTER", "false"),
        ]
        .into();
        c.overlay_env(&|n| env.get(n).map(|v| (*v).to_owned()));
        assert_eq!(c.namespace.as_deref(), Some("om"));
        assert_eq!(c.kubeconfig_path, Some(PathBuf::from("/k")));
        assert!(!c.in_cluster);
        Ok(())
    }
}
