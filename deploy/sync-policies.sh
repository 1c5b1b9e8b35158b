#!/bin/sh
# Copies the policy library (../policies) into deploy/base/policies and regenerates the
# kustomization that turns it into the `kspy-policies` ConfigMap.
#
# Why a copy: kustomize only reads files inside the kustomization's own directory tree
# (a symlink to ../../policies is refused: "security; file ... is not in or below ..."),
# and `--load-restrictor LoadRestrictionsNone` is not available to `kubectl apply -k`.
# A copy keeps the install a plain `kubectl apply -k deploy/overlays/...`.
#
# Run it after every change under policies/:
#     deploy/sync-policies.sh           # rewrite deploy/base/policies
#     deploy/sync-policies.sh --check   # exit 1 if deploy/base/policies is stale (CI)
# The render test (tests/tests/deploy_render.rs) fails while the copy is stale.
#
# Only the policy files are copied: the *.yaml and *.yml files that kspy-webhook loads
# (DebugPolicy documents, and the DebugPolicyTest suites beside them, which the webhook
# skips). The JSON review fixtures the test suites point at stay in policies/: they are
# for `kspy policy test`, and together they are far larger than the policies (about
# 260 KB). With them, `kubectl apply -k` fails, because client-side apply copies the whole
# ConfigMap into its last-applied-configuration annotation and annotations are capped at
# 256 KiB per object. As in kspy-webhook's loader, files and directories whose names start
# with "." are skipped.
#
# ConfigMap keys are file paths relative to policies/ with "/" replaced by "__"
# (keys cannot contain "/"): policies/team/a.yaml -> key team__a.yaml.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$here/../policies
dst=$here/base/policies

mode=sync
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

[ -d "$src" ] || { echo "$0: $src: no such directory" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
out=$tmp/policies
mkdir -p "$out"

# Copy every policy file (*.yaml, *.yml; not under a dot-directory), keeping the tree.
if [ -e "$src/kustomization.yaml" ]; then
  echo "$0: policies/kustomization.yaml would clash with the generated kustomization" >&2
  exit 1
fi
# Symlinks are followed, to files and to directories (find -L), because kspy-webhook's
# loader and `kspy policy check|test` follow them: a linked policy left out of the copy
# would be tested locally and missing in the cluster. A link that leads nowhere or back up
# the tree, and a *.yaml/*.yml that is not a regular file, make the loader refuse the whole
# directory, so they are refused here too, by name.
find_policies() {
  if ! (cd "$src" && find -L . -name '.?*' -prune -o "$@" -print) > "$tmp/found" 2> "$tmp/find-errors"; then
    echo "$0: cannot read policies/ as kspy-webhook's loader would (a symlink loop?):" >&2
    sed 's/^/  /' "$tmp/find-errors" >&2
    exit 1
  fi
}
find_policies \( -type l -o \( \( -name '*.yaml' -o -name '*.yml' \) ! -type f ! -type d \) \)
if [ -s "$tmp/found" ]; then
  echo "$0: kspy-webhook's loader would refuse policies/ for these entries (a symlink that leads" >&2
  echo "  nowhere, or a policy file that is not a regular file); fix or remove them:" >&2
  sed 's#^\./#  policies/#' "$tmp/found" >&2
  exit 1
fi
find_policies -type f \( -name '*.yaml' -o -name '*.yml' \)
LC_ALL=C sort "$tmp/found" > "$tmp/files"
while IFS= read -r f; do
  f=${f#./}
  case $f in
    *"'"*|*" "*) echo "$0: $f: spaces and quotes are not allowed in policy file names" >&2; exit 1 ;;
  esac
  key=$(printf '%s' "$f" | sed 's#/#__#g')
  if ! printf '%s' "$key" | grep -Eq '^[-._a-zA-Z0-9]+$'; then
    echo "$0: $f: ConfigMap key '$key' may only contain letters, digits, '-', '_' and '.'" >&2
    exit 1
  fi
  mkdir -p "$out/$(dirname "$f")"
  cp "$src/$f" "$out/$f"
  printf '%s\n' "$key" >> "$tmp/keys"
  printf "      - '%s=%s'\n" "$key" "$f" >> "$tmp/entries"
done < "$tmp/files"

# The ConfigMap, as compact JSON, must fit the 256 KiB annotation budget of client-side apply
# (the render test, tests/tests/deploy_render.rs, measures the rendered object exactly).
# kubectl writes that JSON with Go's encoding/json: a newline, tab, quote or backslash takes
# two bytes, and `<`, `>`, `&` (CEL's `&&`) and other control characters six (`\u0026`), so
# count the files as that JSON, and refuse above 256 000 bytes (the rest is for the keys and
# the ConfigMap's metadata).
: > "$tmp/all"
if [ -s "$tmp/files" ]; then
  (cd "$out" && sed 's#^\./##' "$tmp/files" | while IFS= read -r f; do cat "$f"; done) > "$tmp/all"
fi
count() { LC_ALL=C tr -cd "$1" < "$tmp/all" | wc -c | tr -d ' '; }
bytes=$(wc -c < "$tmp/all" | tr -d ' ')
doubled=$(count '\n\t\r"\\')
sixfold=$(count '<>&\000-\010\013\014\016-\037')
json=$((bytes + doubled + 5 * sixfold))
if [ "$json" -gt 256000 ]; then
  echo "$0: the policy files take $json bytes as JSON ($bytes bytes of files; newlines, quotes," >&2
  echo "  '&', '<' and '>' grow when escaped): too large for one ConfigMap applied with" >&2
  echo "  'kubectl apply -k' (the last-applied-configuration annotation is capped at 256 KiB);" >&2
  echo "  apply it server-side instead ('kubectl apply --server-side -k ...'), which keeps no such copy." >&2
  exit 1
fi

if [ -s "$tmp/keys" ] && [ "$(sort "$tmp/keys" | uniq -d | wc -l)" -ne 0 ]; then
  echo "$0: two policy files map to the same ConfigMap key:" >&2
  sort "$tmp/keys" | uniq -d >&2
  exit 1
fi

{
  cat <<'HEAD'
# GENERATED by deploy/sync-policies.sh from policies/ -- do not edit; edit policies/
# and run deploy/sync-policies.sh. Every *.yaml/*.yml file of policies/ is a key of the
# ConfigMap; the JSON test fixtures are left out (see deploy/sync-policies.sh).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
configMapGenerator:
  - name: kspy-policies
    namespace: kspy-system
    # A stable name: kubelet updates the mounted files in place and kspy-webhook
    # reloads them (a broken change keeps the previous good set in force).
    options:
      disableNameSuffixHash: true
      labels:
        app.kubernetes.io/name: kspy-webhook
        app.kubernetes.io/component: policies
HEAD
  if [ -s "$tmp/entries" ]; then
    echo "    files:"
    cat "$tmp/entries"
  fi
} > "$out/kustomization.yaml"

if [ "$mode" = check ]; then
  if [ -d "$dst" ] && diff -r "$out" "$dst" > "$tmp/diff" 2>&1; then
    echo "deploy/base/policies is in sync with policies/"
    exit 0
  fi
  cat "$tmp/diff" >&2 || true
  echo "deploy/base/policies is stale: run deploy/sync-policies.sh" >&2
  exit 1
fi

rm -rf "$dst"
cp -R "$out" "$dst"
echo "deploy/base/policies: $(wc -l < "$tmp/files" | tr -d ' ') policy file(s) from policies/"
