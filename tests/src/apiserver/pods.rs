//! Pods (get, list, create, delete, patch; the `ephemeralcontainers` subresource by PATCH
//! and PUT), namespaces and nodes (get, list).
//!
//! Writes follow the API server's order: decode and default, built-in admission (on
//! create), mutating webhooks, the strategy's PrepareFor* (the `ephemeralcontainers`
//! subresource keeps everything of the stored pod but `spec.ephemeralContainers`; on create
//! BeforeCreate gives a generateName pod its name, so mutating webhooks see none),
//! validation (422), validating admission — PodSecurity (`pod_security.rs`), then the
//! webhooks — and storage, skipped with `dryRun=All`.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::protobuf;
use super::selectors::{ContinueKey, ListOptions};
use super::status::{ApiError, WarnedError};
use super::{
    SharedState, defaults, json_response, managed_fields, patch, pod_security, table, validation,
    watch,
};
use crate::admission_chain::{Admitted, Attributes, Operation};
use crate::identity::Identity;

type QueryMap = Query<HashMap<String, String>>;

/// Checks the identity's permissions; 403 in the RBAC authorizer's words otherwise.
pub fn authorize(
    user: &Identity,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    ns: Option<&str>,
    name: Option<&str>,
) -> Result<(), ApiError> {
    let full = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    if user.may(verb, &full, ns) {
        Ok(())
    } else {
        Err(ApiError::forbidden_rbac(
            &user.name, verb, resource, sub, ns, name,
        ))
    }
}

/// `dryRun=All` → true; absent → false; anything else is refused as the handlers refuse
/// options that do not validate (`ValidateCreateOptions`, `ValidateUpdateOptions`,
/// `ValidatePatchOptions`, `ValidateDeleteOptions` → `ValidateDryRun`): 422 Invalid for
/// the options kind `options_kind` of group `meta.k8s.io`, with no name, the bad value
/// printed as Go prints a `[]string` (`%#v`).
pub fn dry_run(q: &HashMap<String, String>, options_kind: &str) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => {
            let body =
                format!("Unsupported value: []string{{{other:?}}}: supported values: \"All\"");
            Err(ApiError {
                code: 422,
                reason: "Invalid".into(),
                message: format!("{options_kind}.meta.k8s.io \"\" is invalid: dryRun: {body}"),
                details: Some(json!({
                    "group": "meta.k8s.io",
                    "kind": options_kind,
                    "causes": [{"reason": "FieldValueNotSupported", "message": body, "field": "dryRun"}]
                })),
            })
        }
    }
}

fn to_json(p: &Pod) -> Result<Value, ApiError> {
    serde_json::to_value(p).map_err(ApiError::internal)
}

fn decode(v: Value) -> Result<Pod, ApiError> {
    serde_json::from_value(v).map_err(|e| {
        ApiError::bad_request(format!(
            "Pod in version \"v1\" cannot be handled as a Pod: {e}"
        ))
    })
}

fn list_item(v: Value) -> Value {
    let mut v = v;
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

fn wants_table(headers: &HeaderMap) -> bool {
    table::wants_table(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
}

fn namespace_labels(
    state: &SharedState,
    ns: &str,
) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let store = state.store();
    let n = store
        .namespace(ns)
        .ok_or_else(|| ApiError::not_found("namespaces", ns))?;
    Ok(n.metadata.labels.clone().unwrap_or_default())
}

/// The ServiceAccount a pod create in `ns` runs as, or the ServiceAccount plugin's 403.
fn service_account(state: &SharedState, ns: &str, pod: &Value) -> Result<Value, ApiError> {
    let name = defaults::service_account_name(pod);
    state
        .store()
        .service_account(ns, &name)
        .cloned()
        .ok_or_else(|| defaults::service_account_not_found(pod, ns, &name))
}

fn list_response(
    state: &SharedState,
    ns: Option<&str>,
    opts: &ListOptions,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (mut pods, rv) = {
        let store = state.store();
        let pods: Vec<Pod> = store
            .pods(ns)
            .into_iter()
            .filter(|p| opts.selects(p))
            .filter(|p| {
                opts.continue_after.as_ref().is_none_or(|after| {
                    let here = (
                        p.metadata.namespace.as_deref().unwrap_or_default(),
                        p.metadata.name.as_deref().unwrap_or_default(),
                    );
                    here > (after.namespace.as_str(), after.name.as_str())
                })
            })
            .collect();
        (pods, store.current_rv().to_string())
    };
    // A page: the first `limit` pods in key order, and where the next one starts. (The real
    // server serves every page from the first page's snapshot; this one from the store as it
    // is, which a test paging while it writes would see.)
    let mut list_meta = json!({"resourceVersion": rv});
    if let Some(limit) = opts.limit
        && pods.len() > limit
    {
        let remaining = pods.len() - limit;
        pods.truncate(limit);
        if let Some(last) = pods.last() {
            list_meta["continue"] = json!(ContinueKey::token(
                last.metadata.namespace.as_deref().unwrap_or_default(),
                last.metadata.name.as_deref().unwrap_or_default(),
            ));
            list_meta["remainingItemCount"] = json!(remaining);
        }
    }
    if wants_table(headers) {
        let mut table = table::pods_table(&pods, &rv);
        table["metadata"] = list_meta;
        return Ok(json_response(StatusCode::OK, &table, &[]));
    }
    let items: Vec<Value> = pods
        .iter()
        .map(|p| to_json(p).map(list_item))
        .collect::<Result<_, _>>()?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": list_meta, "items": items}),
        &[],
    ))
}

/// `GET /api/v1/namespaces/{ns}/pods` (list or watch).
pub async fn list_pods(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path(ns): Path<String>,
    Query(q): QueryMap,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let opts = ListOptions::from_query(&q)?;
    if opts.watch {
        authorize(&user, "watch", "pods", None, Some(&ns), None)?;
        return watch::watch_pods(&state, Some(ns), opts);
    }
    authorize(&user, "list", "pods", None, Some(&ns), None)?;
    list_response(&state, Some(&ns), &opts, &headers)
}

/// `GET /api/v1/pods` (all namespaces; list or watch).
pub async fn list_all_pods(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Query(q): QueryMap,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let opts = ListOptions::from_query(&q)?;
    if opts.watch {
        authorize(&user, "watch", "pods", None, None, None)?;
        return watch::watch_pods(&state, None, opts);
    }
    authorize(&user, "list", "pods", None, None, None)?;
    list_response(&state, None, &opts, &headers)
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}`.
pub async fn get_pod(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&user, "get", "pods", None, Some(&ns), Some(&name))?;
    let pod = state
        .store()
        .pod(&ns, &name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    if wants_table(&headers) {
        let rv = pod.metadata.resource_version.clone().unwrap_or_default();
        return Ok(json_response(
            StatusCode::OK,
            &table::pods_table(&[pod], &rv),
            &[],
        ));
    }
    Ok(json_response(StatusCode::OK, &to_json(&pod)?, &[]))
}

/// `GET .../pods/{name}/ephemeralcontainers` and `.../status`: the Pod.
pub async fn get_pod_sub(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let sub = uri
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    authorize(&user, "get", "pods", Some(&sub), Some(&ns), Some(&name))?;
    let pod = state
        .store()
        .pod(&ns, &name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    Ok(json_response(StatusCode::OK, &to_json(&pod)?, &[]))
}

/// Seeds a pod: defaults and built-in admission, no webhooks, stored as is.
pub fn seed(state: &SharedState, pod: Pod) -> Result<Pod, ApiError> {
    let mut v = to_json(&pod)?;
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    namespace_labels(state, &ns)?;
    defaults::apply_pod_defaults(&mut v);
    // As if `kubectl create` had made it.
    managed_fields::record_update(&mut v, None, "kubectl-create", "");
    let sa = service_account(state, &ns, &v)?;
    defaults::apply_create_admission(&mut v, &sa)?;
    defaults::apply_app_armor_version_skew(&mut v);
    let mut pod = decode(v)?;
    pod.metadata.namespace = Some(ns.clone());
    pod.metadata.uid = Some(defaults::random_uid());
    pod.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    let errs = validation::validate_create(&pod);
    if !errs.is_empty() {
        return Err(ApiError::invalid(
            "Pod",
            pod.metadata.name.as_deref().unwrap_or_default(),
            &errs,
        ));
    }
    state.store().create_pod(pod)
}

/// `POST /api/v1/namespaces/{ns}/pods`.
pub async fn create_pod(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path(ns): Path<String>,
    Query(q): QueryMap,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, WarnedError> {
    state.record("POST", &uri.to_string(), &user, &headers, &body);
    authorize(&user, "create", "pods", None, Some(&ns), None)?;
    let dry = dry_run(&q, "CreateOptions")?;
    // kubectl 1.32 and later create pods with protobuf bodies; kube-apiserver decodes them as
    // it decodes JSON (protobuf.rs holds what is modelled, and refuses the rest by name).
    let mut v: Value = if content_type(&headers).starts_with("application/vnd.kubernetes.protobuf")
    {
        protobuf::decode_pod(&body).map_err(|e| match e {
            protobuf::ProtobufError::Malformed(m) => ApiError::bad_request(format!(
                "Pod in version \"v1\" cannot be handled as a Pod: {m}"
            )),
            e @ protobuf::ProtobufError::NotModelled { .. } => {
                ApiError::new(415, "UnsupportedMediaType", e.to_string())
            }
        })?
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "Pod in version \"v1\" cannot be handled as a Pod: {e}"
            ))
        })?
    };
    if let Some(kind) = v.get("kind").and_then(Value::as_str)
        && kind != "Pod"
    {
        return Err(ApiError::bad_request(format!(
            "the object provided is of kind {kind:?}, not Pod"
        ))
        .into());
    }
    let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(ApiError::bad_request(
            "Pod in version \"v1\" cannot be handled as a Pod: metadata is required",
        )
        .into());
    };
    match meta.get("namespace").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ).into());
        }
        _ => {
            meta.insert("namespace".into(), json!(ns));
        }
    }
    // generateName is resolved when storing (the registry's BeforeCreate), after mutating
    // admission: mutating webhooks see no name, validating ones the generated name.
    for k in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
    ] {
        meta.remove(k);
    }
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    defaults::apply_pod_defaults(&mut v);
    // The field manager runs on the decoded, defaulted object, before admission.
    let manager = managed_fields::manager(
        q.get("fieldManager").map(String::as_str),
        &user_agent(&headers),
    );
    managed_fields::record_update(&mut v, None, &manager, "");
    let ns_labels = namespace_labels(&state, &ns)?;
    let sa = service_account(&state, &ns, &v)?;
    defaults::apply_create_admission(&mut v, &sa)?;
    let pod = decode(v)?;
    // The name the request carries: empty for a generateName create.
    let request_name = pod.metadata.name.clone().unwrap_or_default();

    let chain = state.chain();
    let mut options = json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"});
    if let Some(fm) = q.get("fieldManager") {
        options["fieldManager"] = json!(fm);
    }
    if dry {
        options["dryRun"] = json!(["All"]);
    }
    let mut attrs = Attributes {
        operation: Operation::Create,
        subresource: String::new(),
        name: request_name.clone(),
        namespace: ns.clone(),
        user: user.clone(),
        object: to_json(&pod)?,
        old_object: None,
        dry_run: dry,
        options,
        namespace_labels: ns_labels,
    };
    let mut admitted = Admitted::default();
    // The API server's warning recorder writes each warning into the response at once, so
    // a request refused after a webhook warned still carries the warning.
    // The in-tree mutating plugins, run again by the reinvoker when a webhook changed the
    // pod (a container a webhook added gets the service-account token mounted).
    let in_tree = |object: &mut Value| {
        let sa = service_account(&state, &ns, object)?;
        defaults::apply_create_admission(object, &sa)?;
        *object = to_json(&decode(object.clone())?)?;
        Ok(())
    };
    let outcome = async {
        chain
            .mutate_with(&mut attrs, &state.reviews, &mut admitted, &in_tree)
            .await?;
        let mut v = attrs.object.clone();
        defaults::apply_pod_defaults(&mut v);
        // rest.BeforeCreate: the name from generateName (when still without one), then the
        // system fields; validation and validating admission see the generated name
        // (rest.AdmissionToValidateObjectFunc takes it from the object).
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            defaults::name_from_generate_name(meta);
        }
        // The pod strategy's PrepareForCreate: AppArmor fields and annotations synced.
        admitted
            .warnings
            .extend(defaults::apply_app_armor_version_skew(&mut v));
        let mut pod = decode(v)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        pod.metadata.uid = Some(defaults::random_uid());
        pod.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        pod.status =
            serde_json::from_value(json!({"phase": "Pending", "qosClass": "BestEffort"})).ok();
        let errs = validation::validate_create(&pod);
        if !errs.is_empty() {
            return Err(ApiError::invalid("Pod", &name, &errs));
        }
        attrs.object = to_json(&pod)?;
        if attrs.name.is_empty() {
            attrs.name = name.clone();
        }
        // Validating admission: the PodSecurity plugin, then the webhooks.
        let pod_security_warnings =
            pod_security::admit(&attrs.namespace_labels, &name, &attrs.object)?;
        admitted.warnings.extend(pod_security_warnings);
        chain
            .validate(&attrs, &state.reviews, &mut admitted)
            .await?;
        if dry {
            if state.store().pod(&ns, &name).is_some() {
                return Err(ApiError::already_exists("pods", &name));
            }
            return Ok(json_response(
                StatusCode::CREATED,
                &to_json(&pod)?,
                &admitted.warnings,
            ));
        }
        let stored = state.store().create_pod(pod)?;
        state.kubelet.pod_created(&stored, false);
        Ok::<_, ApiError>(json_response(
            StatusCode::CREATED,
            &to_json(&stored)?,
            &admitted.warnings,
        ))
    }
    .await;
    outcome.map_err(|error| WarnedError::new(error, admitted.warnings))
}

/// `DELETE /api/v1/namespaces/{ns}/pods/{name}`: returns the deleted pod.
pub async fn delete_pod(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): QueryMap,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.record("DELETE", &uri.to_string(), &user, &headers, &body);
    authorize(&user, "delete", "pods", None, Some(&ns), Some(&name))?;
    // dryRun may also come in the DeleteOptions body (kube-rs and client-go put it there).
    let body_dry = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("dryRun").cloned())
        .is_some_and(|d| d == json!(["All"]));
    if dry_run(&q, "DeleteOptions")? || body_dry {
        let pod = state
            .store()
            .pod(&ns, &name)
            .cloned()
            .ok_or_else(|| ApiError::not_found("pods", &name))?;
        return Ok(json_response(StatusCode::OK, &to_json(&pod)?, &[]));
    }
    let pod = state.store().delete_pod(&ns, &name)?;
    state.kubelet.pod_deleted(&ns, &name);
    Ok(json_response(StatusCode::OK, &to_json(&pod)?, &[]))
}

/// Which update strategy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The `ephemeralcontainers` subresource.
    Ephemeral,
    /// The pod itself.
    Pod,
}

/// How the update came: a PUT of the whole object or a PATCH applied to the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// PUT: the object's resourceVersion is the client's precondition.
    Put,
    /// PATCH: a resourceVersion is a precondition only when the patch sets one.
    Patch,
}

/// Who asks to update which pod.
struct UpdateCall<'a> {
    state: &'a SharedState,
    user: &'a Identity,
    ns: &'a str,
    name: &'a str,
    /// The request's `User-Agent`, the field manager's name without `fieldManager`.
    user_agent: String,
}

async fn update(
    call: UpdateCall<'_>,
    target: Target,
    q: &HashMap<String, String>,
    method: Method,
    make: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Response, WarnedError> {
    let UpdateCall {
        state,
        user,
        ns,
        name,
        user_agent,
    } = call;
    let manager = managed_fields::manager(q.get("fieldManager").map(String::as_str), &user_agent);
    let dry = dry_run(
        q,
        match method {
            Method::Put => "UpdateOptions",
            Method::Patch => "PatchOptions",
        },
    )?;
    let chain = state.chain();
    let ns_labels = namespace_labels(state, ns)?;
    // Admission sees UpdateOptions for a PATCH too: endpoints/handlers/patch.go hands the
    // admission attributes patchToUpdateOptions(options) (dryRun, fieldManager and
    // fieldValidation carried over) in both phases, since a patch is an update to storage.
    let mut options = json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"});
    if let Some(fm) = q.get("fieldManager") {
        options["fieldManager"] = json!(fm);
    }
    if dry {
        options["dryRun"] = json!(["All"]);
    }
    let subresource = match target {
        Target::Ephemeral => "ephemeralcontainers",
        Target::Pod => "",
    };
    // One recorder for the whole request: warnings of an attempt that met a conflict stay
    // (the real one keeps them, dropping repeats), and a refusal carries them.
    let mut admitted = Admitted::default();
    let outcome = async {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = state
            .store()
            .pod(ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found("pods", name))?;
        let cur_rv = current.metadata.resource_version.clone();
        let cur_json = to_json(&current)?;
        let mut new_json = make(&cur_json)?;
        if let Some(n) = new_json.pointer("/metadata/name").and_then(Value::as_str)
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(n) = new_json
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            && n != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        // A resourceVersion the client sent is a precondition. A PUT's is always the
        // client's; a patched object carries the stored one unless the patch changed it.
        let sent_rv = new_json
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let client_rv = match method {
            Method::Put => sent_rv,
            Method::Patch => sent_rv.filter(|rv| Some(rv) != cur_rv.as_ref()),
        };
        defaults::apply_pod_defaults(&mut new_json);
        managed_fields::record_update(&mut new_json, Some(&cur_json), &manager, subresource);
        let new_pod = decode(new_json)?;
        let mut attrs = Attributes {
            operation: Operation::Update,
            subresource: subresource.to_string(),
            name: name.to_string(),
            namespace: ns.to_string(),
            user: user.clone(),
            object: to_json(&new_pod)?,
            old_object: Some(cur_json.clone()),
            dry_run: dry,
            options: options.clone(),
            namespace_labels: ns_labels.clone(),
        };
        chain
            .mutate(&mut attrs, &state.reviews, &mut admitted)
            .await?;
        let mut mutated = attrs.object.clone();
        defaults::apply_pod_defaults(&mut mutated);
        let mutated = decode(mutated)?;
        // The precondition is checked inside the storage update, on the object mutating
        // admission produced (registry/generic/registry/store.go Update: UpdatedObject runs
        // the admission transformers, then the resourceVersions are compared): a stale
        // write has been through mutating admission when it gets its 409.
        if let Some(rv) = mutated.metadata.resource_version.as_ref()
            && Some(rv) != cur_rv.as_ref()
        {
            return Err(ApiError::conflict("pods", name));
        }
        let prepared = match target {
            Target::Ephemeral => {
                let mut p = current.clone();
                // dropNonEphemeralContainerUpdates keeps the request's managedFields.
                p.metadata.managed_fields = new_pod.metadata.managed_fields.clone();
                if let Some(spec) = p.spec.as_mut() {
                    spec.ephemeral_containers = mutated
                        .spec
                        .as_ref()
                        .and_then(|s| s.ephemeral_containers.clone());
                }
                p
            }
            Target::Pod => {
                let mut p = mutated;
                p.status = current.status.clone();
                p.metadata.uid = current.metadata.uid.clone();
                p.metadata.creation_timestamp = current.metadata.creation_timestamp.clone();
                p.metadata.resource_version = cur_rv.clone();
                p
            }
        };
        let errs = match target {
            Target::Ephemeral => validation::validate_ephemeral_update(&prepared, &current),
            Target::Pod => validation::validate_pod_update(&prepared, &current),
        };
        if !errs.is_empty() {
            return Err(ApiError::invalid("Pod", name, &errs));
        }
        attrs.object = to_json(&prepared)?;
        // Validating admission: the PodSecurity plugin (only for a significant update of the
        // pod or its ephemeral containers), then the webhooks.
        if pod_security::significant_pod_update(&attrs.object, &cur_json) {
            let warnings = pod_security::admit(&attrs.namespace_labels, name, &attrs.object)?;
            admitted.warnings.extend(warnings);
        }
        chain
            .validate(&attrs, &state.reviews, &mut admitted)
            .await?;
        if dry {
            return Ok(json_response(
                StatusCode::OK,
                &to_json(&prepared)?,
                &admitted.warnings,
            ));
        }
        let stored = match state.store().update_pod(prepared, cur_rv.as_deref()) {
            Ok(p) => p,
            Err(e) if e.reason == "Conflict" && client_rv.is_none() && attempt < 5 => continue,
            Err(e) => return Err(e),
        };
        let old_names: Vec<String> = current
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .map(|e| e.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        let added: Vec<String> = stored
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref())
            .map(|e| {
                e.iter()
                    .map(|c| c.name.clone())
                    .filter(|n| !old_names.contains(n))
                    .collect()
            })
            .unwrap_or_default();
        if !added.is_empty() {
            state.kubelet.ephemeral_added(&stored, &added);
        }
        return Ok::<_, ApiError>(json_response(
            StatusCode::OK,
            &to_json(&stored)?,
            &admitted.warnings,
        ));
    }
    }
    .await;
    outcome.map_err(|error| WarnedError::new(error, admitted.warnings))
}

/// The request's User-Agent, empty when missing or not text.
fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The request's Content-Type, empty when missing or not text.
pub(super) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `PATCH .../pods/{name}/ephemeralcontainers`.
pub async fn patch_ephemeral(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): QueryMap,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, WarnedError> {
    state.record("PATCH", &uri.to_string(), &user, &headers, &body);
    authorize(
        &user,
        "patch",
        "pods",
        Some("ephemeralcontainers"),
        Some(&ns),
        Some(&name),
    )?;
    let kind = patch::PatchKind::from_content_type(&content_type(&headers))?;
    update(
        UpdateCall {
            state: &state,
            user: &user,
            ns: &ns,
            name: &name,
            user_agent: user_agent(&headers),
        },
        Target::Ephemeral,
        &q,
        Method::Patch,
        |cur| patch::apply(kind, cur, &body),
    )
    .await
}

/// `PUT .../pods/{name}/ephemeralcontainers` (body: the whole Pod).
pub async fn put_ephemeral(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): QueryMap,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, WarnedError> {
    state.record("PUT", &uri.to_string(), &user, &headers, &body);
    authorize(
        &user,
        "update",
        "pods",
        Some("ephemeralcontainers"),
        Some(&ns),
        Some(&name),
    )?;
    update(
        UpdateCall {
            state: &state,
            user: &user,
            ns: &ns,
            name: &name,
            user_agent: user_agent(&headers),
        },
        Target::Ephemeral,
        &q,
        Method::Put,
        |_| {
            serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "Pod in version \"v1\" cannot be handled as a Pod: {e}"
                ))
            })
        },
    )
    .await
}

/// `PATCH /api/v1/namespaces/{ns}/pods/{name}` (pod update rules apply).
pub async fn patch_pod(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): QueryMap,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, WarnedError> {
    state.record("PATCH", &uri.to_string(), &user, &headers, &body);
    authorize(&user, "patch", "pods", None, Some(&ns), Some(&name))?;
    let kind = patch::PatchKind::from_content_type(&content_type(&headers))?;
    update(
        UpdateCall {
            state: &state,
            user: &user,
            ns: &ns,
            name: &name,
            user_agent: user_agent(&headers),
        },
        Target::Pod,
        &q,
        Method::Patch,
        |cur| patch::apply(kind, cur, &body),
    )
    .await
}

/// `GET /api/v1/namespaces` (list, or a watch of the current namespaces).
pub async fn list_namespaces(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Query(q): QueryMap,
) -> Result<Response, ApiError> {
    let opts = ListOptions::from_query(&q)?;
    if opts.watch {
        authorize(&user, "watch", "namespaces", None, None, None)?;
        return watch::watch_namespaces(&state, &opts);
    }
    authorize(&user, "list", "namespaces", None, None, None)?;
    let store = state.store();
    cluster_list_response("NamespaceList", store.namespaces(), store.current_rv())
}

/// `GET /api/v1/namespaces/{ns}`.
pub async fn get_namespace(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&user, "get", "namespaces", None, None, Some(&ns))?;
    let n = state
        .store()
        .namespace(&ns)
        .cloned()
        .ok_or_else(|| ApiError::not_found("namespaces", &ns))?;
    object_response(&n)
}

/// `GET /api/v1/nodes`.
pub async fn list_nodes(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
) -> Result<Response, ApiError> {
    authorize(&user, "list", "nodes", None, None, None)?;
    let store = state.store();
    cluster_list_response("NodeList", store.nodes(), store.current_rv())
}

/// `GET /api/v1/nodes/{name}`.
pub async fn get_node(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&user, "get", "nodes", None, None, Some(&name))?;
    let n = state
        .store()
        .node(&name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("nodes", &name))?;
    object_response(&n)
}

/// A `v1` list of cluster-scoped objects, as `kind` at resourceVersion `rv`.
fn cluster_list_response<T: serde::Serialize>(
    kind: &str,
    objects: impl IntoIterator<Item = T>,
    rv: impl std::fmt::Display,
) -> Result<Response, ApiError> {
    let items: Vec<Value> = objects
        .into_iter()
        .map(|o| serde_json::to_value(o).map(list_item))
        .collect::<Result<_, _>>()
        .map_err(ApiError::internal)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        &[],
    ))
}

/// One object, 200 OK.
fn object_response<T: serde::Serialize>(object: &T) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &serde_json::to_value(object).map_err(ApiError::internal)?,
        &[],
    ))
}
