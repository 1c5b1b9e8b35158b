//! Issue point 1: which requests are debug requests, and who in them is judged.

mod common;

use common::*;
use kspy_admission::classify::{Action, ContainerList, NoClassifier, classify};
use kspy_admission::{ParsedReview, Settings, Verdict};
use serde_json::json;

fn classified(review: serde_json::Value) -> Option<(Action, Vec<String>)> {
    let parsed = ParsedReview::from_value(review).unwrap();
    classify(&parsed, &NoClassifier).unwrap().map(|r| {
        (
            r.action,
            r.subjects.iter().map(|s| s.name.clone()).collect(),
        )
    })
}

#[test]
fn attach_judges_only_containers_new_by_name() {
    let old = vec![
        json!({"name": "dbg-old", "image": "busybox", "securityContext": {"privileged": true}}),
    ];
    let new = vec![debugger("dbg-new", "busybox")];
    let (action, subjects) = classified(attach("ns", "u", &[], old, new)).unwrap();
    assert_eq!(action, Action::Attach);
    assert_eq!(subjects, ["dbg-new"]);
}

#[test]
fn an_existing_container_changed_in_place_is_judged() {
    let old = vec![debugger("dbg", "busybox")];
    let mut r = attach("ns", "u", &[], old, vec![]);
    r["request"]["object"]["spec"]["ephemeralContainers"][0]["securityContext"] =
        json!({"privileged": true});
    let (_, subjects) = classified(r).unwrap();
    assert_eq!(subjects, ["dbg"]);
}

#[test]
fn attach_adding_nothing_is_allowed_with_nothing_to_judge() {
    let r = attach("ns", "u", &[], vec![debugger("dbg", "busybox")], vec![]);
    let (_, subjects) = classified(r.clone()).unwrap();
    assert!(subjects.is_empty());
    let j = validate(&engine(""), &r);
    assert!(j.response.allowed);
}

#[test]
fn copies_and_node_pods_are_recognised() {
    let mut copy = pod("ns");
    copy["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
    let (action, subjects) = classified(create("ns", "u", &[], copy)).unwrap();
    assert_eq!(action, Action::Copy);
    assert_eq!(subjects, ["app", "sidecar"]);

    let mut node = pod("default");
    node["metadata"]["name"] = json!("node-debugger-node-a-x1");
    node["spec"]["nodeName"] = json!("node-a");
    assert_eq!(
        classified(create("default", "u", &[], node.clone()))
            .unwrap()
            .0,
        Action::Node
    );

    // The name alone, without nodeName, is not kubectl debug node's shape.
    node["spec"]["nodeName"] = json!(null);
    assert!(classified(create("default", "u", &[], node)).is_none());
}

#[test]
fn kubectl_copy_to_is_a_copy() {
    // `kubectl debug POD --copy-to=NAME --image=busybox` without `--container`: the copy holds
    // a container kubectl named `debugger-` and five characters of its random alphabet. The
    // shipped webhook configuration sends exactly these pods; judged as anything but a copy,
    // they would be allowed untouched.
    let mut copy = pod("ns");
    copy["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "debugger-x7k2p", "image": "busybox",
                     "securityContext": {"privileged": true}}));
    let (action, subjects) = classified(create("ns", "u", &[], copy.clone())).unwrap();
    assert_eq!(action, Action::Copy);
    assert_eq!(subjects, ["app", "sidecar", "debugger-x7k2p"]);
    let j = validate(&engine(""), &create("ns", "u", &[], copy.clone()));
    assert!(!j.response.allowed, "{:?}", j.response.result.message);

    // Names kubectl never generates: a vowel, a `0`, the wrong length, another prefix.
    for name in [
        "debugger-abcde",
        "debugger-x7k20",
        "debugger-x7k2",
        "debugger-x7k2pp",
        "debug-x7k2p",
        "debugger",
    ] {
        copy["spec"]["containers"][2]["name"] = json!(name);
        assert!(
            classified(create("ns", "u", &[], copy.clone())).is_none(),
            "{name} is not kubectl's debugger name"
        );
    }
}

#[test]
fn everything_else_is_not_a_debug_request() {
    // A plain pod.
    assert!(classified(create("ns", "u", &[], pod("ns"))).is_none());
    // Another resource.
    let mut r = create(
        "ns",
        "u",
        &[],
        json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}}),
    );
    r["request"]["resource"] = json!({"group": "apps", "version": "v1", "resource": "deployments"});
    assert!(classified(r).is_none());
    // Another subresource and another operation on pods.
    let mut r = attach("ns", "u", &[], vec![], vec![debugger("d", "busybox")]);
    r["request"]["subResource"] = json!("status");
    assert!(classified(r.clone()).is_none());
    r["request"]["operation"] = json!("DELETE");
    r["request"]["subResource"] = json!(null);
    assert!(classified(r).is_none());
    // And such requests are allowed untouched.
    let j = validate(&engine(""), &create("ns", "u", &[], pod("ns")));
    assert!(j.response.allowed);
    assert_eq!(j.verdict, Verdict::NotDebug);
    assert!(j.response.patch.is_none());
}

#[test]
fn subjects_know_their_place_for_patches() {
    let mut copy = pod("ns");
    copy["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
    copy["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    let parsed = ParsedReview::from_value(create("ns", "u", &[], copy)).unwrap();
    let req = classify(&parsed, &NoClassifier).unwrap().unwrap();
    let places: Vec<(ContainerList, usize)> =
        req.subjects.iter().map(|s| (s.list, s.index)).collect();
    assert_eq!(
        places,
        [
            (ContainerList::InitContainers, 0),
            (ContainerList::Containers, 0),
            (ContainerList::Containers, 1)
        ]
    );
}

#[test]
fn a_debug_label_of_another_value_is_denied_not_waved_through() {
    for value in ["Copy", "yes", ""] {
        let mut p = pod("ns");
        p["metadata"]["labels"] = json!({"kspy.dev/debug": value});
        p["spec"]["hostPID"] = json!(true);
        let j = validate(&engine(""), &create("ns", "u", &[], p));
        assert!(!j.response.allowed, "{value:?}");
        let m = &j.response.result.message;
        assert!(
            m.contains(&format!(
                "the pod is labelled kspy.dev/debug={value:?}, which is neither copy nor node"
            )),
            "{m}"
        );
    }
}

#[test]
fn a_missing_old_object_on_attach_is_denied_not_waved_through() {
    let mut r = attach("ns", "u", &[], vec![], vec![debugger("d", "busybox")]);
    r["request"]["oldObject"] = json!(null);
    let j = validate(&engine(""), &r);
    assert!(!j.response.allowed);
    assert!(
        j.response
            .result
            .message
            .contains("without request.oldObject"),
        "{}",
        j.response.result.message
    );
}

#[test]
fn cel_classifiers_mark_debug_copies() {
    let settings = Settings {
        copy_classifier: Some("object.metadata.name.endsWith('-debug')".into()),
        ..Settings::default()
    };
    let e = engine_with("", settings);
    let mut copy = pod("ns");
    copy["metadata"]["name"] = json!("web-1-debug");
    let j = validate(&e, &create("ns", "u", &[], copy));
    assert_eq!(j.action, Some(Action::Copy));
    assert!(!j.response.allowed, "no policy allows it");
    // A classifier that does not compile is refused when the engine is built.
    let bad = Settings {
        node_classifier: Some("object.metadata.name.(".into()),
        ..Settings::default()
    };
    let set = kspy_admission::PolicySet::from_yaml("t", "").unwrap();
    let err = kspy_admission::Engine::new(set, bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nodeClassifier"), "{err}");
}

/// A classifier reading `namespaceObject` cannot tell whether a pod is a debug pod when the
/// Namespace is unknown: `has()` over the null it reads is false, which let the pod through
/// unjudged. It denies, saying why.
#[test]
fn a_classifier_reading_the_namespace_denies_when_the_namespace_is_unknown() {
    let settings = Settings {
        copy_classifier: Some(
            "has(namespaceObject.metadata.labels) && 'debug-copies' in \
             namespaceObject.metadata.labels && object.metadata.name.endsWith('-debug')"
                .into(),
        ),
        ..Settings::default()
    };
    let e = engine_with(
        r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: anyone}
spec:
  grant: {images: ['**'], runAsRoot: true, mountVolumes: all}
"#,
        settings,
    );
    let mut copy = pod("ns");
    copy["metadata"]["name"] = json!("web-1-debug");
    copy["spec"]["hostPID"] = json!(true);
    let review = create("ns", "u", &[], copy);
    let labelled = namespace("ns", &[("debug-copies", "true")]);
    let j = judge(
        &e,
        &review,
        kspy_admission::Endpoint::Validate,
        Some(&labelled),
    );
    assert_eq!(j.action, Some(Action::Copy));
    assert!(!j.response.allowed, "hostPID is granted to no one");
    let j = validate(&e, &review);
    assert!(
        !j.response.allowed,
        "passed unjudged with the Namespace unknown"
    );
    assert!(
        j.response.result.message.contains("the copy classifier")
            && j.response.result.message.contains("namespaceObject"),
        "{}",
        j.response.result.message
    );
}

/// A pod update may change a container's image. For a debug copy or node pod that is the
/// creation with that image again: `kubectl set image pod/node-debugger-… debugger=evil` ran any
/// image with the host access the pod was granted, unjudged. The containers whose image
/// changes are judged, as the pod's creation with it would be; nothing else is.
#[test]
fn an_image_change_of_a_debug_pod_is_judged() {
    let e = engine(&policy(
        "copies",
        "  match: {actions: [copy]}\n  grant: {images: ['registry.example.com/**'], runAsRoot: true, mountVolumes: all}\n  defaults:\n    env: [{name: KSPY_SESSION, value: x}]",
    ));
    let mut before = pod("ns");
    before["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
    let update = |after: &serde_json::Value| {
        review(
            "ns",
            "u",
            &[],
            "UPDATE",
            None,
            after.clone(),
            Some(before.clone()),
        )
    };
    // The image changed to one no policy grants: denied, for that container only.
    let mut after = before.clone();
    after["spec"]["containers"][1]["image"] = json!("evil.example.org/rootkit:1");
    let (action, subjects) = classified(update(&after)).unwrap();
    assert_eq!(
        (action, subjects),
        (Action::Copy, vec!["sidecar".to_owned()])
    );
    let j = validate(&e, &update(&after));
    assert!(!j.response.allowed);
    assert!(
        j.response
            .result
            .message
            .contains("image evil.example.org/rootkit:1 is not granted"),
        "{}",
        j.response.result.message
    );
    // Also when the same update removes the label that made it a copy.
    let mut unlabelled = after.clone();
    unlabelled["metadata"]["labels"] = json!({});
    assert!(!validate(&e, &update(&unlabelled)).response.allowed);
    // A granted image is allowed, and /mutate patches nothing: the API server refuses a pod
    // update changing anything of a container but its image.
    let mut granted = before.clone();
    granted["spec"]["containers"][1]["image"] = json!("registry.example.com/shop/envoy:2");
    assert!(validate(&e, &update(&granted)).response.allowed);
    let m = judge(
        &e,
        &update(&granted),
        kspy_admission::Endpoint::Mutate,
        None,
    );
    assert!(m.response.allowed && m.response.patch.is_none());
    // An update changing no image is no debug request, nor is one of an ordinary pod.
    let mut relabelled = before.clone();
    relabelled["metadata"]["labels"]["team"] = json!("a");
    assert!(classified(update(&relabelled)).is_none());
    let mut plain = pod("ns");
    let old = plain.clone();
    plain["spec"]["containers"][1]["image"] = json!("evil.example.org/rootkit:1");
    assert!(classified(review("ns", "u", &[], "UPDATE", None, plain, Some(old))).is_none());
    // A node pod is one by its name and node, which an update cannot change.
    let mut node = pod("default");
    node["metadata"]["name"] = json!("node-debugger-node-a-x1");
    node["spec"]["nodeName"] = json!("node-a");
    let mut swapped = node.clone();
    swapped["spec"]["containers"][0]["image"] = json!("evil.example.org/rootkit:1");
    let (action, _) = classified(review(
        "default",
        "u",
        &[],
        "UPDATE",
        None,
        swapped,
        Some(node),
    ))
    .unwrap();
    assert_eq!(action, Action::Node);
}

/// A copy or node pod recognised by a configured classifier is one by what the classifier reads,
/// which may be what an update changes (a label, an annotation). An update that removes it while
/// changing an image ran any image with what the pod was granted, unjudged: the classifiers are
/// asked about the pod as it was before the update too, as the `kspy.dev/debug` label is.
#[test]
fn an_image_change_that_drops_what_a_classifier_reads_is_judged() {
    let copies = "has(object.metadata.labels) && 'example.com/copy-of' in object.metadata.labels";
    let nodes = "has(object.metadata.annotations) && 'example.com/node-debug' in object.metadata.annotations";
    let settings = Settings {
        copy_classifier: Some(copies.into()),
        node_classifier: Some(nodes.into()),
        ..Settings::default()
    };
    let e = engine_with(
        &policy(
            "debug-pods",
            "  match: {actions: [copy, node]}\n  grant: {images: ['registry.example.com/**'], runAsRoot: true, mountVolumes: all}",
        ),
        settings,
    );
    for (field, key, action) in [
        ("labels", "example.com/copy-of", Action::Copy),
        ("annotations", "example.com/node-debug", Action::Node),
    ] {
        let mut before = pod("ns");
        before["metadata"][field] = json!({ key: "web" });
        for c in before["spec"]["containers"].as_array_mut().unwrap() {
            c["image"] = json!("registry.example.com/shop/web:1");
        }
        assert!(
            validate(&e, &create("ns", "u", &[], before.clone()))
                .response
                .allowed
        );
        let mut after = before.clone();
        after["metadata"][field] = json!({});
        after["spec"]["containers"][0]["image"] = json!("evil.example.org/rootkit:1");
        let j = validate(
            &e,
            &review("ns", "u", &[], "UPDATE", None, after, Some(before.clone())),
        );
        assert_eq!(j.action, Some(action), "{field}");
        assert!(
            !j.response.allowed,
            "{field}: the image change went unjudged"
        );
        assert!(
            j.response
                .result
                .message
                .contains("image evil.example.org/rootkit:1 is not granted"),
            "{}",
            j.response.result.message
        );
    }
}
