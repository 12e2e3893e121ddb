//! Addresses: binding `--host` (an IP address or a host name), the URL clients should use, and
//! the warning for a server that other machines can reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Result, anyhow};
use tokio::net::TcpListener;

/// Listens on `host` (resolved if it is a name) and `port`. A name that resolves to several
/// addresses binds the first that works, IPv4 ones first: `localhost` often resolves to both
/// `::1` and `127.0.0.1`, and the IPv4 one is the one every client reaches.
pub async fn bind(host: &str, port: u16) -> Result<TcpListener> {
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| anyhow!("cannot resolve --host {host}: {e}"))?
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    let mut failure = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => failure = Some(anyhow!("cannot listen on {addr}: {e}")),
        }
    }
    Err(failure.unwrap_or_else(|| anyhow!("--host {host} resolves to no address")))
}

/// The URL clients should use: a wildcard address becomes loopback.
pub fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The URL of a server at `host` (an address or a name) and `port`.
pub fn url_of(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => base_url(SocketAddr::new(ip, port)),
        Err(_) => format!("http://{host}:{port}"),
    }
}

/// A warning for a listener that is not on loopback: the emulator has no TLS, so the token
/// and every value cross the network in clear text, and anyone who reaches the port can try.
pub fn exposure_warning(addr: SocketAddr) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "warning: listening on {addr}, beyond this machine, without TLS: the token and the \
         data cross the network in clear text; use --host 127.0.0.1 unless you mean it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_hosts_become_loopback() {
        assert_eq!(
            base_url("0.0.0.0:4733".parse().unwrap()),
            "http://127.0.0.1:4733"
        );
        assert_eq!(base_url("[::]:1".parse().unwrap()), "http://[::1]:1");
        assert_eq!(base_url("10.0.0.2:9".parse().unwrap()), "http://10.0.0.2:9");
        assert_eq!(url_of("::1", 7), "http://[::1]:7");
        assert_eq!(url_of("localhost", 7), "http://localhost:7");
    }

    #[test]
    fn only_loopback_is_quiet() {
        assert!(exposure_warning("127.0.0.1:1".parse().unwrap()).is_none());
        assert!(exposure_warning("[::1]:1".parse().unwrap()).is_none());
        for wide in ["0.0.0.0:1", "[::]:1", "192.168.1.2:1"] {
            let warning = exposure_warning(wide.parse().unwrap()).unwrap();
            assert!(warning.contains("TLS"), "{warning}");
        }
    }

    #[tokio::test]
    async fn names_resolve_and_bind() {
        let listener = bind("localhost", 0).await.unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        assert!(bind("no-such-host.invalid", 0).await.is_err());
    }
}
