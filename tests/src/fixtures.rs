//! Pods used by the harness tests and scenarios.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

/// A slim application pod: container `app` (`registry.example.com/shop/web:1.4.2`) running as
/// uid 1000, mounting the emptyDir `data` at `/data` and the Secret volume `creds` at `/creds`.
pub fn web_pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "creds", "secret": {"secretName": "web-creds"}}
            ],
            "containers": [{
                "name": "app",
                "image": "registry.example.com/shop/web:1.4.2",
                "env": [{"name": "MODE", "value": "prod"}],
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "creds", "mountPath": "/creds", "readOnly": true}
                ]
            }]
        }
    }))
    .unwrap_or_default()
}

/// A pod with two containers (`app`, `sidecar`), for target-selection cases.
pub fn two_container_pod(namespace: &str, name: &str) -> Pod {
    let mut p = web_pod(namespace, name);
    if let Some(spec) = p.spec.as_mut() {
        let mut side = spec.containers[0].clone();
        side.name = "sidecar".into();
        side.image = Some("registry.example.com/shop/proxy:2.0".into());
        side.volume_mounts = None;
        spec.containers.push(side);
    }
    p
}

/// A pod that meets Pod Security "restricted": container `app` (uid 1000) with
/// `allowPrivilegeEscalation: false` and all capabilities dropped; the pod runs as non-root
/// with the RuntimeDefault seccomp profile.
pub fn hardened_pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{
                "name": "app",
                "image": "registry.example.com/shop/web:1.4.2",
                "securityContext": {
                    "runAsUser": 1000,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                },
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]
            }]
        }
    }))
    .unwrap_or_default()
}
