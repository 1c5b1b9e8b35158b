//! Binding the listeners, so that `[::]` means every address of the pod, IPv4 and IPv6.
//!
//! In an IPv6 cluster, or a dual-stack one whose first family is IPv6, the pod's address and
//! the Service's endpoints are IPv6: the API server and the kubelet's probes connect there,
//! and a listener on `0.0.0.0` refuses them (every debug request is then refused, with
//! `failurePolicy: Fail`, and the pods never turn ready). So the Deployment listens on
//! `[::]`, and this binds it with `IPV6_V6ONLY` off, taking IPv4 as well (as IPv4-mapped
//! addresses) whatever the `net.ipv6.bindv6only` sysctl says. On a node whose kernel has no
//! IPv6 at all (booted with `ipv6.disable=1`) no IPv6 socket can be made: the listener then
//! falls back to `0.0.0.0` on the same port, the only addresses such a pod can have, so the
//! same manifest works on every cluster.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::error::WebhookError;

/// Pending connections the kernel queues (Tokio's and std's own backlog).
const BACKLOG: i32 = 1024;

/// Binds `addr` for the flag `flag` (for messages). An unspecified IPv6 address (`[::]:PORT`)
/// is bound dual-stack, or as `0.0.0.0:PORT` where the kernel has no IPv6; any other address
/// is bound as given.
pub(crate) async fn bind(
    addr: SocketAddr,
    flag: &'static str,
) -> Result<TcpListener, WebhookError> {
    let bind_error = |addr, error| WebhookError::Bind { addr, flag, error };
    if !(addr.is_ipv6() && addr.ip().is_unspecified()) {
        return TcpListener::bind(addr)
            .await
            .map_err(|error| bind_error(addr, error));
    }
    match Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)) {
        Ok(socket) => dual_stack(socket, addr).map_err(|error| bind_error(addr, error)),
        Err(error) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::info!(
                flag,
                requested = %addr,
                listening = %v4,
                error = %error,
                "no IPv6 on this host; listening on IPv4 only"
            );
            TcpListener::bind(v4)
                .await
                .map_err(|error| bind_error(v4, error))
        }
    }
}

/// Listens on `addr` (an IPv6 address) with `socket`, taking IPv4 connections too.
fn dual_stack(socket: Socket, addr: SocketAddr) -> std::io::Result<TcpListener> {
    socket.set_only_v6(false)?;
    // As Tokio's own bind: a restarted server can listen again while old connections linger.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}
