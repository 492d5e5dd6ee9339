//! How the store reaches Redis: one server, the primary that Sentinel names, or a
//! Cluster, each with TLS on rustls when the URL asks for it; one connection attempt.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, FromRedisValue};

use super::{COMMAND_WAIT, StoreSettings, error_text};
use crate::config::{StoreUrl, Topology};

/// The longest one connection attempt may take (TCP, TLS, AUTH, SELECT; with Sentinel
/// the question to the sentinels too).
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// A connection requests can use.
#[derive(Clone)]
pub(super) enum Conn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Conn::Node(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }
}

/// What the connection task connects to.
pub(super) enum Target {
    Node(redis::Client),
    Sentinel {
        sentinels: Vec<redis::Client>,
        master: String,
        /// Everything but the address of the primary, which the sentinels name.
        node: redis::RedisConnectionInfo,
        tls: Option<redis::TlsCertificates>,
    },
    Cluster(redis::cluster::ClusterClient),
}

fn node_info(url: &StoreUrl, password: Option<&str>) -> redis::RedisConnectionInfo {
    redis::RedisConnectionInfo {
        db: url.db,
        username: url.username.clone(),
        password: password.map(str::to_string),
        protocol: redis::ProtocolVersion::RESP2,
    }
}

fn address(host: &str, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_string(), port)
    }
}

fn certificates(settings: &StoreSettings) -> Option<redis::TlsCertificates> {
    settings.url.tls.then(|| redis::TlsCertificates {
        client_tls: settings
            .client_cert
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: settings.ca_pem.clone(),
    })
}

fn client(
    info: ConnectionInfo,
    tls: Option<&redis::TlsCertificates>,
) -> redis::RedisResult<redis::Client> {
    match tls {
        Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
        None => redis::Client::open(info),
    }
}

pub(super) fn target(settings: &StoreSettings) -> redis::RedisResult<Target> {
    let url = &settings.url;
    let tls = certificates(settings);
    let password = url.password.as_ref().map(|p| p.expose().as_str());
    Ok(match &url.topology {
        Topology::Single => {
            let (host, port) = &url.hosts[0];
            let info = ConnectionInfo {
                addr: address(host, *port, url.tls),
                redis: node_info(url, password),
            };
            Target::Node(client(info, tls.as_ref())?)
        }
        Topology::Sentinel { master } => {
            let sentinel_password = url.sentinel_password.as_ref().map(|p| p.expose().clone());
            let sentinels = url
                .hosts
                .iter()
                .map(|(host, port)| {
                    let info = ConnectionInfo {
                        addr: address(host, *port, url.tls),
                        redis: redis::RedisConnectionInfo {
                            db: 0,
                            username: None,
                            password: sentinel_password.clone(),
                            protocol: redis::ProtocolVersion::RESP2,
                        },
                    };
                    client(info, tls.as_ref())
                })
                .collect::<redis::RedisResult<Vec<_>>>()?;
            Target::Sentinel {
                sentinels,
                master: master.clone(),
                node: node_info(url, password),
                tls,
            }
        }
        Topology::Cluster => {
            let nodes: Vec<ConnectionInfo> = url
                .hosts
                .iter()
                .map(|(host, port)| ConnectionInfo {
                    addr: address(host, *port, url.tls),
                    redis: node_info(url, password),
                })
                .collect();
            let mut builder = redis::cluster::ClusterClientBuilder::new(nodes)
                .connection_timeout(CONNECT_WAIT)
                .response_timeout(COMMAND_WAIT)
                .retries(2)
                .max_retry_wait(200)
                .min_retry_wait(50);
            if let Some(certs) = tls {
                builder = builder.certs(certs);
            }
            Target::Cluster(builder.build()?)
        }
    })
}

fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_WAIT)
        .set_response_timeout(CONNECT_WAIT)
}

/// One connection attempt, bounded by [`CONNECT_WAIT`].
pub(super) async fn connect(target: &Target) -> Result<Conn, String> {
    let attempt = async {
        match target {
            Target::Node(client) => {
                let conn = client
                    .get_multiplexed_async_connection_with_config(&connection_config())
                    .await
                    .map_err(|e| error_text(&e))?;
                let conn = Conn::Node(conn);
                conn.query::<String>(&redis::cmd("PING"))
                    .await
                    .map_err(|e| error_text(&e))?;
                Ok(conn)
            }
            Target::Sentinel {
                sentinels,
                master,
                node,
                tls,
            } => connect_primary(sentinels, master, node, tls.as_ref()).await,
            Target::Cluster(client) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(CONNECT_WAIT)
                    .set_response_timeout(COMMAND_WAIT);
                let conn = client
                    .get_async_connection_with_config(config)
                    .await
                    .map_err(|e| error_text(&e))?;
                let conn = Conn::Cluster(conn);
                conn.query::<String>(&redis::cmd("PING"))
                    .await
                    .map_err(|e| error_text(&e))?;
                Ok(conn)
            }
        }
    };
    tokio::time::timeout(CONNECT_WAIT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no connection within {} ms",
                CONNECT_WAIT.as_millis()
            ))
        })
}

/// Asks each sentinel in turn for the primary of `master`, connects to it and checks
/// that it says it is the primary (a sentinel can lag behind a fail-over).
async fn connect_primary(
    sentinels: &[redis::Client],
    master: &str,
    node: &redis::RedisConnectionInfo,
    tls: Option<&redis::TlsCertificates>,
) -> Result<Conn, String> {
    let mut last = String::from("no sentinel answered");
    let per_sentinel = CONNECT_WAIT / 4;
    for sentinel in sentinels {
        let asked = tokio::time::timeout(per_sentinel, async {
            let mut conn = sentinel
                .get_multiplexed_async_connection_with_config(&connection_config())
                .await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master)
                .query_async::<Option<(String, String)>>(&mut conn)
                .await
        })
        .await;
        let (host, port) = match asked {
            Ok(Ok(Some((host, port)))) => (host, port),
            Ok(Ok(None)) => {
                last = format!("a sentinel does not know the master `{master}`");
                continue;
            }
            Ok(Err(e)) => {
                last = format!("a sentinel: {}", error_text(&e));
                continue;
            }
            Err(_) => {
                last = "a sentinel did not answer".into();
                continue;
            }
        };
        let Ok(port) = port.parse::<u16>() else {
            last = "a sentinel named a primary without a port".into();
            continue;
        };
        let info = ConnectionInfo {
            addr: address(&host, port, tls.is_some()),
            redis: node.clone(),
        };
        let primary = async {
            let client = client(info, tls)?;
            let conn = client
                .get_multiplexed_async_connection_with_config(&connection_config())
                .await?;
            let conn = Conn::Node(conn);
            let role: Vec<redis::Value> = conn.query(&redis::cmd("ROLE")).await?;
            Ok::<_, redis::RedisError>((conn, role))
        };
        match primary.await {
            Ok((conn, role)) => match role.first() {
                Some(redis::Value::BulkString(r)) if r == b"master" => return Ok(conn),
                _ => last = format!("the primary the sentinels name ({host}:{port}) is not one"),
            },
            Err(e) => last = format!("the primary {host}:{port}: {}", error_text(&e)),
        }
    }
    Err(last)
}
