//! `pods/attach` over WebSocket and `pods/log`.
//!
//! Attach speaks the channel protocols of `apimachinery/pkg/util/httpstream/wsstream`:
//! subprotocols `v5.channel.k8s.io` (preferred), `v4.channel.k8s.io`, `channel.k8s.io`;
//! binary frames whose first byte is the channel — 0 stdin, 1 stdout, 2 stderr, 3 error
//! (a `Status` when the process ends), 4 resize (`{"Width":W,"Height":H}`), and with v5
//! 255 = close (`[255, channel]`). Like the kubelet, a 1-byte frame on the lowest writable
//! channel announces the stream. SPDY is not served; kubectl ≥ 1.30 uses WebSocket.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::SharedState;
use super::pods::authorize;
use super::status::{ApiError, success_status};
use crate::identity::Identity;
use crate::shell::{Input, Process};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

/// The container a log request means (`LogLocation`): the named one (400 when unknown), else
/// the only container (400 listing the choices otherwise). The
/// `kubectl.kubernetes.io/default-container` annotation is kubectl's business: the API server
/// never reads it.
pub fn resolve_container(pod: &Pod, wanted: Option<&String>) -> Result<String, ApiError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let regular: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let init: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    let eph: Vec<String> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        if regular.contains(w) || init.contains(w) || eph.contains(w) {
            return Ok(w.clone());
        }
        return Err(ApiError::bad_request(format!(
            "container {w} is not valid for pod {pod_name}"
        )));
    }
    if regular.len() == 1 {
        return Ok(regular[0].clone());
    }
    let mut msg = format!(
        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
        regular.join(" ")
    );
    if !init.is_empty() {
        msg.push_str(&format!(
            " or one of the init containers: [{}]",
            init.join(" ")
        ));
    }
    if !eph.is_empty() {
        msg.push_str(&format!(
            " or one of the ephemeral containers: [{}]",
            eph.join(" ")
        ));
    }
    Err(ApiError::bad_request(msg))
}

/// The container an attach means, as `validateContainer` (`pkg/registry/core/pod/strategy.go`)
/// decides for `AttachLocation`: the named one (400 when the pod has none of that name), else
/// the only regular container, else 400 listing every container — init, regular, ephemeral,
/// in `VisitContainers` order, as Go prints a `[]string`. No annotation is consulted.
pub fn attach_container(pod: &Pod, wanted: Option<&String>) -> Result<String, ApiError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .chain(spec.containers.iter().map(|c| c.name.clone()))
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone()),
        )
        .collect();
    if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        if all.contains(w) {
            return Ok(w.clone());
        }
        return Err(ApiError::bad_request(format!(
            "container {w} is not valid for pod {pod_name}"
        )));
    }
    match spec.containers.as_slice() {
        [only] => Ok(only.name.clone()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            all.join(" ")
        ))),
    }
}

fn waiting_reason(pod: &Pod, container: &str) -> Option<String> {
    let st = pod.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .chain(st.ephemeral_container_statuses.iter().flatten())
        .chain(st.init_container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .map(|w| w.reason.clone().unwrap_or_default())
}

/// What the kubelet's `ServeAttach` writes on the error channel when the attach ends: an
/// attach is not an exec, so the process's exit code is not reported — `Success` whenever
/// the runtime's attach returned without error, whatever the code.
fn end_status() -> Value {
    success_status()
}

/// The status the API server's stream translator (the WebSocket-to-SPDY translation of
/// `v5.channel.k8s.io` requests, `TranslateStreamCloseWebsocketRequests`, on from 1.30)
/// writes when the kubelet refused the attach: its SPDY upgrade failed with the kubelet's
/// plain-text answer, which is not a Status, so `NewInternalError("unable to upgrade
/// connection: …")`.
fn refused_status(kubelet_says: &str) -> Value {
    let cause = format!("unable to upgrade connection: {kubelet_says}");
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {cause}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500
    })
}

#[derive(Debug, Clone, Copy)]
struct Flags {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

/// `GET|POST .../pods/{name}/attach?container=&stdin=&stdout=&stderr=&tty=` (WebSocket upgrade).
pub async fn attach(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    method: Method,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // The authorizer sees the verb the request info resolver derives from the HTTP method
    // (apiserver/pkg/endpoints/request/requestinfo.go): GET, which a WebSocket handshake
    // must use, is `get`; POST (SPDY) is `create`. From 1.35 the
    // AuthorizePodWebsocketUpgradeCreatePermission gate (beta, on by default) adds a
    // synthetic `create` check for the upgrade, so both verbs are needed there.
    let verb = if method == Method::GET {
        "get"
    } else {
        "create"
    };
    authorize(&user, verb, "pods", Some("attach"), Some(&ns), Some(&name))?;
    if method == Method::GET && state.options.websocket_upgrade_needs_create {
        authorize(
            &user,
            "create",
            "pods",
            Some("attach"),
            Some(&ns),
            Some(&name),
        )?;
    }
    let pod = state
        .store()
        .pod(&ns, &name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    let container = attach_container(&pod, q.get("container"))?;
    // A request that asks for no upgrade at all goes no further: the upgrade-aware proxy
    // (`UpgradeRequired`) answers it without reaching the kubelet.
    if !headers.contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let flags = Flags {
        stdin: truthy(&q, "stdin"),
        stdout: truthy(&q, "stdout"),
        stderr: truthy(&q, "stderr"),
    };
    let ws =
        ws.map(|ws| ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]));
    let v5 = ws.as_ref().is_ok_and(|ws| {
        ws.selected_protocol()
            .is_some_and(|p| p == "v5.channel.k8s.io")
    });
    // The kubelet attaches only to a running container (`GetAttach` looks among the
    // runtime's running containers): anything else — waiting, terminated — is
    // `container X not found in pod NAME_NS`, a plain-text 500 from its streaming server.
    // A v5 WebSocket request is upgraded by the API server's stream translator before it
    // asks the kubelet, so the refusal comes as a Status on the error channel; other
    // requests are proxied and get the kubelet's answer as it is.
    let Some(process) = state
        .kubelet
        .process(&ns, &name, &container)
        .filter(|p| p.exited().is_none())
    else {
        let kubelet_says = format!("container {container} not found in pod {name}_{ns}");
        return Ok(match ws {
            Ok(ws) if v5 => ws.on_upgrade(move |socket| refused(socket, flags, kubelet_says)),
            _ => {
                let mut resp = (StatusCode::INTERNAL_SERVER_ERROR, kubelet_says).into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                resp
            }
        });
    };
    let ws = ws.map_err(|_| {
        ApiError::bad_request("this API server serves attach over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io)")
    })?;
    Ok(ws.on_upgrade(move |socket| session(socket, process, flags, v5)))
}

/// The first writable channel of a stream, which the server announces with a 1-byte frame.
fn first_channel(flags: Flags) -> u8 {
    if flags.stdout {
        STDOUT
    } else if flags.stderr {
        STDERR
    } else {
        ERROR
    }
}

/// A translated attach the kubelet refused: the stream opens, the error channel carries
/// [`refused_status`], then the connection closes.
async fn refused(socket: WebSocket, flags: Flags, kubelet_says: String) {
    let (mut sink, _stream) = socket.split();
    let frames = [
        Message::Binary(Bytes::from(vec![first_channel(flags)])),
        Message::Binary(Bytes::from(
            [
                &[ERROR][..],
                refused_status(&kubelet_says).to_string().as_bytes(),
            ]
            .concat(),
        )),
        Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })),
    ];
    for f in frames {
        if sink.send(f).await.is_err() {
            return;
        }
    }
}

async fn session(socket: WebSocket, process: Arc<Process>, flags: Flags, v5: bool) {
    let first = first_channel(flags);
    let out_channel = (first != ERROR).then_some(first);
    let (mut sink, mut stream) = socket.split();
    let mut out = process.output.subscribe();
    if sink
        .send(Message::Binary(Bytes::from(vec![first])))
        .await
        .is_err()
    {
        return;
    }
    let mut exit = process.exit.clone();
    let mut stdin_open = flags.stdin;
    let frame = |ch: u8, data: &[u8]| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(ch);
        v.extend_from_slice(data);
        Message::Binary(Bytes::from(v))
    };
    loop {
        tokio::select! {
            biased;
            o = out.recv(), if out_channel.is_some() => match o {
                Ok(bytes) => {
                    if let Some(ch) = out_channel
                        && sink.send(frame(ch, &bytes)).await.is_err()
                    {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {}
            },
            _ = async { exit.wait_for(|c| c.is_some()).await.is_ok() } => {
                while let Ok(bytes) = out.try_recv() {
                    if let Some(ch) = out_channel {
                        let _ = sink.send(frame(ch, &bytes)).await;
                    }
                }
                let _ = sink.send(frame(ERROR, end_status().to_string().as_bytes())).await;
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                return;
            }
            m = stream.next() => match m {
                Some(Ok(Message::Binary(d))) if !d.is_empty() => match d[0] {
                    STDIN if stdin_open => {
                        let _ = process.input.send(Input::Data(d[1..].to_vec()));
                    }
                    RESIZE => {
                        if let Ok(v) = serde_json::from_slice::<Value>(&d[1..]) {
                            let w = v.get("Width").and_then(Value::as_u64).unwrap_or(0) as u16;
                            let h = v.get("Height").and_then(Value::as_u64).unwrap_or(0) as u16;
                            let _ = process.input.send(Input::Resize(w, h));
                        }
                    }
                    CLOSE if v5 && d.get(1) == Some(&STDIN) => stdin_open = false,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// `GET .../pods/{name}/log?container=&follow=&tailLines=`.
pub async fn log(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    authorize(&user, "get", "pods", Some("log"), Some(&ns), Some(&name))?;
    let pod = state
        .store()
        .pod(&ns, &name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    let container = resolve_container(&pod, q.get("container"))?;
    let process = state
        .kubelet
        .process(&ns, &name, &container)
        .ok_or_else(|| {
            let r = waiting_reason(&pod, &container).unwrap_or_else(|| "ContainerCreating".into());
            ApiError::bad_request(format!(
                "container {container:?} in pod {name:?} is waiting to start: {r}"
            ))
        })?;
    let (backlog, mut rx) = process.subscribe_with_backlog();
    let backlog = match q.get("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        Some(n) => {
            let text = String::from_utf8_lossy(&backlog).to_string();
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            lines[lines.len().saturating_sub(n)..].concat().into_bytes()
        }
        None => backlog,
    };
    let mut resp = if truthy(&q, "follow") && process.exited().is_none() {
        let (mut tx, body_rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(64);
        let mut exit = process.exit.clone();
        tokio::spawn(async move {
            if tx.send(Ok(Bytes::from(backlog))).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    biased;
                    o = rx.recv() => match o {
                        Ok(b) => if tx.send(Ok(Bytes::from(b))).await.is_err() { return },
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                    _ = async { exit.wait_for(|c| c.is_some()).await.is_ok() } => {
                        while let Ok(b) = rx.try_recv() {
                            let _ = tx.send(Ok(Bytes::from(b))).await;
                        }
                        return;
                    }
                }
            }
        });
        (StatusCode::OK, Body::from_stream(body_rx)).into_response()
    } else {
        (StatusCode::OK, backlog).into_response()
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}
