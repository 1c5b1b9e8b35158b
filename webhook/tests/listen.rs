//! The default listen addresses take IPv4 and IPv6 connections: in an IPv6 or IPv6-first
//! dual-stack cluster the API server and the kubelet's probes connect to the pod's IPv6
//! address, and a listener on 0.0.0.0 refused them.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use common::{Harness, POLICIES, admin_get, fixture};
use kspy_webhook::client::{HttpVersion, HttpsConnection};

/// Whether this host can listen on IPv6 loopback at all (a kernel without IPv6 cannot).
fn has_ipv6() -> bool {
    std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

#[tokio::test]
async fn default_addresses_serve_ipv4_and_ipv6() {
    // The defaults' addresses, with ports the system picks.
    let h = Harness::start_with(POLICIES, |c| {
        let defaults = kspy_webhook::ServerConfig::new(&c.policies_dir, c.tls.clone());
        c.addr = SocketAddr::new(defaults.addr.ip(), 0);
        c.admin_addr = SocketAddr::new(defaults.admin_addr.ip(), 0);
    })
    .await;
    let mut families = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if has_ipv6() {
        families.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    } else {
        eprintln!("no IPv6 on this host: only IPv4 is checked");
    }
    for ip in families {
        let addr = SocketAddr::new(ip, h.server.addr.port());
        let mut conn = HttpsConnection::connect(addr, "localhost", &h.tls, HttpVersion::Http1)
            .await
            .unwrap_or_else(|e| panic!("no review connection over {ip}: {e:?}"));
        let resp = conn
            .post_json("/validate", fixture("attach-allowed.json"))
            .await
            .unwrap_or_else(|e| panic!("no review answer over {ip}: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "review over {ip}");
        let admin = SocketAddr::new(ip, h.server.admin_addr.port());
        let (status, body) = admin_get(admin, "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"), "/readyz over {ip}");
    }
}
