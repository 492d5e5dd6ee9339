//! The Redis session store as users run it, through the real binary and real
//! `redis-server` processes on loopback: TLS with a test CA (and client certificates),
//! a Sentinel set whose primary is killed mid-traffic, a three-node Cluster, Redis
//! paused (SIGSTOP) and restarted with AOF under signed-in load, and Portcullis started
//! while Redis is down.
//!
//! The tests run one at a time (they measure waits and recovery times on a small
//! machine). Needs `npm ci --prefix e2e/oidc` and Debian's `redis-server` and
//! `redis-tools` (e2e/test-all installs them).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_servers::*;
use common::signin_env::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LONG_TOKENS: IdpOptions = IdpOptions {
    token_ttl: 600,
    refresh_token_rotation: "static",
};

/// Portcullis with `store` (config lines) on one port; waits for `/readyz` or not.
async fn portcullis(store: &str, idp: &IdpOptions, wait: bool) -> Env {
    let port = common::free_port();
    let env = start_general("default", false, store, idp, "", port, &[port], wait).await;
    // Not ready, but listening.
    wait_port(env.admin);
    env
}

/// `/readyz` of the first replica: its status and body.
async fn readyz(env: &Env) -> (u16, String) {
    let a = common::plain_get(
        SocketAddr::from(([127, 0, 0, 1], env.admin)),
        "localhost",
        "/readyz",
    )
    .await;
    (a.status, a.body)
}

/// `/readyz` stays 503 for `secs` seconds while the process keeps running.
async fn stays_unready(env: &mut Env, secs: u64) {
    for _ in 0..secs * 4 {
        let (status, body) = readyz(env).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("session store"), "{body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        env.proxy.0.try_wait().unwrap().is_none(),
        "portcullis exited instead of waiting for the store"
    );
}

fn log(env: &Env) -> String {
    std::fs::read_to_string(env.dir.0.join("portcullis.log")).unwrap_or_default()
}

/// A signed-in API call: its status, or `None` when it got no answer in 5 s.
async fn api(c: &reqwest::Client, url: &str) -> Option<u16> {
    c.get(url)
        .header("accept", "application/json")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// One request of the steady load.
#[derive(Debug, Clone, Copy)]
struct Sample {
    browser: usize,
    start: Instant,
    took: Duration,
    status: Option<u16>,
}

/// Each browser calls `url` every 100 ms until `until`, one request at a time.
fn steady_load(
    browsers: &[reqwest::Client],
    url: String,
    until: Instant,
) -> tokio::task::JoinHandle<Vec<Sample>> {
    let browsers = browsers.to_vec();
    tokio::spawn(async move {
        let runs = browsers.into_iter().enumerate().map(|(i, c)| {
            let url = url.clone();
            async move {
                let mut out = Vec::new();
                while Instant::now() < until {
                    let start = Instant::now();
                    let status = api(&c, &url).await;
                    out.push(Sample {
                        browser: i,
                        start,
                        took: start.elapsed(),
                        status,
                    });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                out
            }
        });
        futures_util::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
            .collect()
    })
}

/// `n` browsers, each signed in (Alice and Bob in turn), each with its own session.
async fn signed_in(env: &Env, n: usize) -> Vec<reqwest::Client> {
    let mut out = Vec::new();
    for i in 0..n {
        let b = env.browser();
        let login = if i % 2 == 0 { ALICE_LOGIN } else { BOB_LOGIN };
        let (r, hops) = follow(&b, &env.url("app", "/"), Some(login)).await;
        assert_eq!(r.status(), 200, "{hops:#?}");
        out.push(b);
    }
    out
}

/// Sign-in, a signed-in request and the session's key in Redis (hash-tagged).
async fn signs_in_and_stores(env: &Env, keys: impl Fn() -> String) {
    let b = signed_in(env, 1).await.remove(0);
    assert_eq!(api(&b, &env.url("app", "/api")).await, Some(200));
    let keys = keys();
    assert!(
        keys.lines()
            .any(|k| k.starts_with("portcullis:session:{") && k.ends_with('}')),
        "no session key: {keys}"
    );
}

/// A TLS-only `redis-server` (asking for client certificates or not), and its port.
fn tls_redis(dir: &Dir, tls: &TlsFiles, clients: bool) -> (Server, u16) {
    let port = common::free_port();
    let mut args = base_args(port, dir);
    args.extend(tls.server_args(port, clients));
    (Server::start(dir, port, args), port)
}

/// [`signs_in_and_stores`] against a TLS Redis, read back with `redis-cli --tls`.
async fn signs_in_over_tls(env: &Env, tls: &TlsFiles, port: u16) {
    let options = tls.cli_options();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    signs_in_and_stores(env, || {
        cli_with(port, &options, &["--scan", "--pattern", "portcullis:*"])
    })
    .await;
}

#[tokio::test]
async fn rediss_with_a_test_ca_and_the_server_name_checked() {
    let _serial = SERIAL.lock().await;
    let dir = Dir::new("redis-tls");
    let tls = TlsFiles::new(&dir);
    let (_redis, port) = tls_redis(&dir, &tls, false);
    let ca = format!("session_store_ca_file: {}\n", tls.ca.display());
    let env = portcullis(
        &format!("session_store: rediss://127.0.0.1:{port}/0\n{ca}"),
        &LONG_TOKENS,
        true,
    )
    .await;
    signs_in_over_tls(&env, &tls, port).await;

    // The certificate names 127.0.0.1, not localhost: refused, and said so.
    let mut wrong_name = portcullis(
        &format!("session_store: rediss://localhost:{port}/0\n{ca}"),
        &LONG_TOKENS,
        false,
    )
    .await;
    stays_unready(&mut wrong_name, 3).await;
    let text = log(&wrong_name);
    assert!(
        text.contains("cannot connect to the session store") && text.contains("certificate"),
        "{text}"
    );
    // Nor is the test CA trusted without the CA file (the system roots).
    let mut no_ca = portcullis(
        &format!("session_store: rediss://127.0.0.1:{port}/0\n"),
        &LONG_TOKENS,
        false,
    )
    .await;
    stays_unready(&mut no_ca, 2).await;
}

#[tokio::test]
async fn rediss_with_a_client_certificate() {
    let _serial = SERIAL.lock().await;
    let dir = Dir::new("redis-mtls");
    let tls = TlsFiles::new(&dir);
    let (_redis, port) = tls_redis(&dir, &tls, true);
    let base = format!(
        "session_store: rediss://127.0.0.1:{port}/0\nsession_store_ca_file: {}\n",
        tls.ca.display()
    );
    let env = portcullis(
        &format!(
            "{base}session_store_cert_file: {}\nsession_store_key_file: {}\n",
            tls.client_cert.display(),
            tls.client_key.display()
        ),
        &LONG_TOKENS,
        true,
    )
    .await;
    signs_in_over_tls(&env, &tls, port).await;
    // Without the certificate Redis ends the handshake: never ready.
    let mut without = portcullis(&base, &LONG_TOKENS, false).await;
    stays_unready(&mut without, 3).await;
}

#[tokio::test]
async fn sentinel_fail_over_mid_traffic() {
    let _serial = SERIAL.lock().await;
    let dir = Dir::new("redis-sentinel");
    let mut set = SentinelSet::start(&dir);
    let env = portcullis(
        &format!("session_store: {}\n", set.url()),
        &LONG_TOKENS,
        true,
    )
    .await;
    let browsers = signed_in(&env, 4).await;
    // Every session is on the replica before the primary dies (replication is
    // asynchronous: what the primary had not yet sent is lost in a fail-over).
    assert_eq!(cli(set.primary.port, &["WAIT", "1", "5000"]), "1");

    let traffic_until = Instant::now() + Duration::from_secs(30);
    let load = steady_load(&browsers, env.url("app", "/api"), traffic_until);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = Instant::now();
    set.primary.kill();
    let replica = set.replica.port;
    let mut elected = None;
    while Instant::now() < killed + Duration::from_secs(20) {
        if set.primary_port() == Some(replica) {
            elected = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elected = elected.expect("the sentinels promoted the replica within 20 s");
    let samples = load.await.unwrap();

    let failed: Vec<&Sample> = samples.iter().filter(|s| s.status != Some(200)).collect();
    let after = |s: &Sample, t: Instant| s.start.saturating_duration_since(t).as_secs_f64();
    let last_failure = failed.iter().map(|s| s.start + s.took).max();
    eprintln!(
        "sentinel fail-over: {} requests, {} failed ({} of them 503), the first {:.2} s after \
         the kill; replica promoted {:.2} s after the kill; last failure ended {:.2} s after \
         the promotion; slowest request {:?}",
        samples.len(),
        failed.len(),
        failed.iter().filter(|s| s.status == Some(503)).count(),
        failed
            .iter()
            .map(|s| s.start + s.took)
            .min()
            .map_or(0.0, |t| t.saturating_duration_since(killed).as_secs_f64()),
        elected.duration_since(killed).as_secs_f64(),
        last_failure.map_or(0.0, |t| t.saturating_duration_since(elected).as_secs_f64()),
        samples.iter().map(|s| s.took).max().unwrap_or_default(),
    );
    assert!(
        failed.iter().all(|s| s.status == Some(503)),
        "failures other than 503: {failed:?}"
    );
    assert!(
        failed.iter().all(|s| after(s, elected) < 10.0),
        "failures later than 10 s after the promotion: {:?}",
        failed
            .iter()
            .map(|s| after(s, elected))
            .filter(|t| *t >= 10.0)
            .collect::<Vec<_>>()
    );
    assert!(
        samples.iter().all(|s| s.took < Duration::from_secs(2)),
        "a request waited longer than the bound"
    );
    // Sessions keep working on the new primary, every one of them.
    for b in &browsers {
        assert_eq!(api(b, &env.url("app", "/api")).await, Some(200));
    }
    assert!(
        samples
            .iter()
            .filter(|s| s.start > elected + Duration::from_secs(10))
            .count()
            >= 4,
        "the load did not go on past the fail-over"
    );
}

#[tokio::test]
async fn cluster_sign_in_refresh_sign_out_and_the_handoff_guard() {
    let _serial = SERIAL.lock().await;
    let dir = Dir::new("redis-cluster");
    let cluster = Cluster::start(&dir);
    // Two replicas behind a balancer: a handoff replayed on the other replica is
    // stopped by the shared guard in Redis, not by the first replica's memory.
    let (a, b) = (common::free_port(), common::free_port());
    let lb = balancer(vec![
        SocketAddr::from(([127, 0, 0, 1], a)),
        SocketAddr::from(([127, 0, 0, 1], b)),
    ])
    .await;
    let rotating = IdpOptions {
        token_ttl: 64,
        refresh_token_rotation: "rotate",
    };
    let env = start_general(
        "default",
        false,
        &format!("session_store: {}\n", cluster.url()),
        &rotating,
        "",
        lb,
        &[a, b],
        true,
    )
    .await;

    // Sign-in, then the handoff to the app: redeemed once, replayed on both replicas.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let alice = env.browser_with(jar.clone());
    let handoff = until_handoff(&alice, &env.url("app", "/"), Some(ALICE_LOGIN)).await;
    let first = get(&env.browser_with(jar.clone()), &handoff, "text/html").await;
    assert_eq!(first.status(), 302, "the handoff is redeemed");
    for _ in 0..2 {
        let replay = get(&env.browser_with(jar.clone()), &handoff, "text/html").await;
        assert_eq!(replay.status(), 400, "a replayed handoff");
    }
    let session_keys = cluster.keys("portcullis:session:*");
    assert!(!session_keys.is_empty());
    // The session, its handoff record (and refresh lock) share one slot, so one node.
    let tag = |k: &str| k.split('}').next().unwrap().to_string();
    for (node, key) in &session_keys {
        for (other_node, other) in &session_keys {
            if tag(key) == tag(other) {
                assert_eq!(node, other_node, "{key} and {other} on different nodes");
            }
        }
    }
    assert!(
        session_keys.iter().any(|(_, k)| k.contains(":handoff:")),
        "{session_keys:?}"
    );

    // Alice on a second host (single sign-on through the authenticate host).
    let (r, hops) = follow(&alice, &env.url("admin", "/"), None).await;
    assert_eq!(r.status(), 200, "{hops:#?}");

    // Refreshes (every few seconds with these tokens), over both replicas and the
    // cluster's refresh lock: no request fails, each refresh token is used once.
    let deadline = Instant::now() + Duration::from_secs(14);
    let mut calls = 0;
    while Instant::now() < deadline {
        for host in ["app", "admin"] {
            let c = env.browser_with(jar.clone());
            assert_eq!(api(&c, &env.url(host, "/api")).await, Some(200), "{host}");
            calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refreshes = env.events("refresh").await;
    let jtis: std::collections::HashSet<_> = refreshes
        .iter()
        .filter_map(|e| e["refresh_token_jti"].as_str())
        .collect();
    eprintln!(
        "cluster: {calls} API calls, {} refreshes, {} refresh errors",
        refreshes.len(),
        env.events("refresh_error").await.len()
    );
    assert!(refreshes.len() >= 2, "{refreshes:?}");
    assert_eq!(
        jtis.len(),
        refreshes.len(),
        "a refresh token was used twice"
    );
    assert!(env.events("refresh_error").await.is_empty());

    // Sign-out ends the session everywhere at once.
    let r = sign_out(&alice, &env.url("app", "/.portcullis/sign_out")).await;
    assert_eq!(r.status(), 302);
    let (r, hops) = follow(&alice, &location(&r), None).await;
    assert_eq!(r.status(), 200, "{hops:#?}");
    // A credential decoded in the last 5 s may be remembered that long on a replica.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for host in ["app", "admin"] {
        let c = env.browser_with(jar.clone());
        assert_eq!(api(&c, &env.url(host, "/api")).await, Some(401), "{host}");
    }
    assert!(
        cluster
            .keys("portcullis:session:*")
            .iter()
            .all(|(_, k)| k.contains(":handoff:")),
        "the session is gone from the cluster"
    );
}

#[tokio::test]
async fn redis_paused_then_restarted_with_aof_under_load() {
    let _serial = SERIAL.lock().await;
    let dir = Dir::new("redis-pause");
    let port = common::free_port();
    let mut args = base_args(port, &dir);
    args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
    let mut redis = Server::start(&dir, port, args);
    let env = portcullis(
        &format!("session_store: redis://127.0.0.1:{port}/0\n"),
        &LONG_TOKENS,
        true,
    )
    .await;
    let browsers = signed_in(&env, 4).await;
    let url = env.url("app", "/api");

    // 30 s of SIGSTOP under steady load.
    let load = steady_load(
        &browsers,
        url.clone(),
        Instant::now() + Duration::from_secs(40),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sign_out_url = env.url("app", "/.portcullis/sign_out");
    let csrf = sign_out_csrf(&browsers[0], &sign_out_url).await;
    redis.signal("STOP");
    let stopped = Instant::now();
    // Past the 5 s a decoded credential is remembered: the user page and a sign-out
    // need the store, and say so (a sign-out is never reported done unrecorded).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let user = api(&browsers[0], &env.url("app", "/.portcullis/user")).await;
    let r = browsers[0]
        .post(&sign_out_url)
        .form(&[("csrf", csrf.as_str())])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!((user, r.status().as_u16()), (Some(503), 503));
    tokio::time::sleep(stopped + Duration::from_secs(30) - Instant::now()).await;
    redis.signal("CONT");
    let resumed = Instant::now();
    let samples = load.await.unwrap();

    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.start >= stopped && s.start + s.took <= resumed)
        .collect();
    let slowest = during.iter().map(|s| s.took).max().unwrap_or_default();
    let answered_503 = during.iter().filter(|s| s.status == Some(503)).count();
    // A credential decoded in the 5 s before is served from memory that long.
    let late_200 = during
        .iter()
        .filter(|s| s.status == Some(200) && s.start > stopped + Duration::from_secs(6))
        .count();
    // Per session: from SIGCONT to its first 200.
    let recovery: Vec<Duration> = (0..browsers.len())
        .map(|i| {
            samples
                .iter()
                .filter(|s| s.browser == i && s.status == Some(200))
                .map(|s| s.start + s.took)
                .filter(|end| *end >= resumed)
                .min()
                .map_or(Duration::MAX, |end| end.duration_since(resumed))
        })
        .collect();
    eprintln!(
        "pause: {} requests during the 30 s, {answered_503} answered 503, slowest {slowest:?}; \
         recovery per session after SIGCONT: {recovery:?}",
        during.len()
    );
    assert!(answered_503 > 50, "the pause was not felt: {during:?}");
    assert!(
        during
            .iter()
            .all(|s| matches!(s.status, Some(200) | Some(503))),
        "{during:?}"
    );
    assert_eq!(late_200, 0, "a session was let through without the store");
    assert!(
        slowest < Duration::from_millis(1800),
        "a request waited {slowest:?}: more than the 1 s bound"
    );
    assert!(
        recovery.iter().all(|d| *d <= Duration::from_secs(1)),
        "{recovery:?}"
    );
    assert!(
        samples
            .iter()
            .filter(|s| s.start > resumed + Duration::from_secs(1))
            .all(|s| s.status == Some(200)),
        "failures a second after the resume"
    );
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("portcullis_session_store_errors_total{op=\"load\",kind=\"timeout\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_session_store_duration_seconds_bucket"));

    // Restarted (SIGTERM: the AOF is written), under load: no session is lost.
    // Down longer than a decoded credential is remembered (5 s), so every session is
    // read from the restarted Redis afterwards.
    let load = steady_load(
        &browsers,
        url.clone(),
        Instant::now() + Duration::from_secs(14),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.stop();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    redis.restart();
    let up = Instant::now();
    let samples = load.await.unwrap();
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.status != Some(200)).collect();
    let last_failure = failed
        .iter()
        .map(|s| s.start + s.took)
        .max()
        .map(|t| t.saturating_duration_since(up));
    eprintln!(
        "restart: {} requests, {} failed while Redis was down {:?}; last failure ended \
         {last_failure:?} after it listened again",
        samples.len(),
        failed.len(),
        up.duration_since(down)
    );
    assert!(!failed.is_empty(), "the restart was not felt");
    assert!(failed.iter().all(|s| s.status == Some(503)), "{failed:?}");
    assert!(
        last_failure.is_none_or(|d| d <= Duration::from_secs(1)),
        "{last_failure:?}"
    );
    for b in &browsers {
        assert_eq!(api(b, &url).await, Some(200), "a session was lost");
    }
}

#[tokio::test]
async fn started_while_redis_is_down_it_becomes_ready_when_redis_comes_up() {
    let _serial = SERIAL.lock().await;
    let dir = Dir::new("redis-late");
    let port = common::free_port();
    // With a password, which no log line may show.
    let password = "pw-that-must-stay-secret";
    let mut env = portcullis(
        &format!("session_store: redis://:{password}@127.0.0.1:{port}/0\n"),
        &LONG_TOKENS,
        false,
    )
    .await;
    stays_unready(&mut env, 3).await;
    let mut args = base_args(port, &dir);
    args.extend(["--requirepass".to_string(), password.to_string()]);
    let _redis = Server::start(&dir, port, args);
    let listening = Instant::now();
    let mut ready = None;
    while Instant::now() < listening + Duration::from_secs(10) {
        if readyz(&env).await.0 == 200 {
            ready = Some(listening.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("ready {ready:?} after Redis listened");
    assert!(
        ready.is_some_and(|d| d < Duration::from_secs(2)),
        "{ready:?}"
    );
    let b = signed_in(&env, 1).await.remove(0);
    assert_eq!(api(&b, &env.url("app", "/api")).await, Some(200));
    let text = log(&env);
    assert!(
        text.contains("cannot connect to the session store"),
        "{text}"
    );
    assert!(!text.contains(password), "the password is in the log");
}
