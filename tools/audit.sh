#!/usr/bin/env bash
# tools/audit.sh: an independent audit of a respaldo records folder.
#
#   tools/audit.sh [--approver SHA256:fingerprint]... RECORDS_DIR
#
# Uses only git, ssh-keygen, sha256sum and coreutils. It walks HEAD's first-parent chain,
# oldest first (a commit that only a merge brought in is never looked at), and checks:
#   1. the trust policy (policy/allowed_signers, policy/revoked_keys): anchored by its first
#      commit when an approver that commit lists signed it (with --approver: by the first
#      commit of it that a pinned key signed); a later change counts only when signed by an
#      approver of the policy before it;
#   2. every host's chain of records against that policy, by the rules of schemas/chain.ts;
#   3. every approval and checkpoint: each commit that touched it since an approver's signed
#      deletion of it is a plain commit that git says an approver of the policy just before
#      it signed (%G? = G); an approval's request_digest is the sha256 of its request;
#   4. every checkpoint against the heads of the chains (one that stopped counting, or that
#      went away without an approver's signed deletion, is a violation too).
# It reads only the plain lines it needs (the six header lines, key.public, request:,
# request_digest:, decision:, heads:), not the rest of each file's YAML fields.
# One line per finding on stdout, a summary last; exit 0 only when nothing is wrong.
set -euo pipefail
export LC_ALL=C
# Nobody's git configuration may change a verdict: no global or system file, names unquoted.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git() { command git -c log.showSignature=false -c core.quotePath=false "$@"; }

usage() { echo "usage: $0 [--approver SHA256:fingerprint]... RECORDS_DIR" >&2; exit 2; }
approvers=()
while (($#)); do
  case $1 in
    --approver) (($# >= 2)) || usage; approvers+=("$2"); shift 2 ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
  esac
done
(($# == 1)) || usage
cd -- "$1" 2>/dev/null || { echo "audit: $1 is not a folder" >&2; exit 2; }   # git pathspecs are relative to it
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
records=0 genuine=0 intact=0 broken_hosts=0 valid=0 invalid=0 ignored=0 violated=0 pin_error=0

# ---- 1. The trust policy -------------------------------------------------------------------
# snap REV NAME: REV's two policy files as $tmp/NAME.as and $tmp/NAME.rev (empty when absent);
# REV "" is the working tree.
snap() {
  if [[ -z $1 ]]; then cat policy/allowed_signers; else git show "$1:./policy/allowed_signers"; fi > "$tmp/$2.as" 2>/dev/null || : > "$tmp/$2.as"
  if [[ -z $1 ]]; then cat policy/revoked_keys; else git show "$1:./policy/revoked_keys"; fi > "$tmp/$2.rev" 2>/dev/null || : > "$tmp/$2.rev"
}
# git_as NAME ARGS...: git, checking commit signatures against policy NAME (%G? is G when good).
git_as() { local p=$1; shift; git -c gpg.ssh.allowedSignersFile="$tmp/$p.as" -c gpg.ssh.revocationFile="$tmp/$p.rev" "$@"; }

trust_paths=(policy/allowed_signers policy/revoked_keys approvals checkpoints)   # what the trust rules read
anchor='' anchor_key='' accepted=0 is_git=0 st='' key='' first=''
declare -A hist=() gone=()   # approvals/… and checkpoints/…: "ok", or the first reason it does not count; gone: withdrawn by an approver
if [[ $(git rev-parse --is-inside-work-tree 2>/dev/null) == true ]] && git rev-parse -q --verify HEAD >/dev/null 2>&1; then is_git=1; fi
if ((is_git)); then
  : > "$tmp/E.as"; : > "$tmp/E.rev"
  while read -r c parents; do
    np=$(wc -w <<< "$parents")
    # What the commit changed against its first parent.
    policy=0 files=()
    while IFS=$'\t' read -r s p; do
      case $p in
        policy/allowed_signers | policy/revoked_keys) policy=1 ;;
        approvals/*/* | checkpoints/*/*) ;;
        approvals/* | checkpoints/*) files+=("${s:0:1} $p") ;;
      esac
    done < <(if ((np)); then set -- "$c^1" "$c"; else set -- --root "$c"; fi
             git diff-tree -r --relative --no-commit-id --no-renames --name-status "$@" -- policy approvals checkpoints)
    if [[ -z $anchor ]]; then                 # the anchor: the first commit of the policy (or a pinned key's)
      ((policy)) || continue
      eligible=$((${#approvers[@]} > 0)); if [[ -z $first ]]; then first=$c; eligible=1; fi
      ((eligible && np < 2)) || continue
      snap "$c" C
      read -r st key < <(git_as C log -1 --format='%G? %GK' "$c") || true
      if [[ $st == G ]] && { ((${#approvers[@]} == 0)) || [[ " ${approvers[*]} " == *" $key "* ]]; }; then
        anchor=$c anchor_key=$key; cp "$tmp/C.as" "$tmp/E.as"; cp "$tmp/C.rev" "$tmp/E.rev"
      fi
      continue
    fi
    # Judged against the policy in force just before it; a merge never counts.
    if ((np > 1)); then st=merge; else read -r st key < <(git_as E log -1 --format='%G? %GK' "$c") || true; fi
    for f in "${files[@]}"; do
      p=${f#* }
      if [[ $st == G && ${f%% *} == D ]]; then hist[$p]=''; gone[$p]=1; continue; fi
      unset "gone[$p]"
      if [[ $st != G && ${hist[$p]:-ok} == ok ]]; then hist[$p]="commit $c (%G?=$st)"; elif [[ -z ${hist[$p]:-} ]]; then hist[$p]=ok; fi
    done
    ((policy)) || continue
    if [[ $st == G ]]; then accepted=$((accepted + 1)); snap "$c" E
    else echo "IGNORED-POLICY $c not signed by an approver trusted before it (%G?=$st)"; ignored=$((ignored + 1)); fi
  done < <(git log --first-parent --reverse --format='%H %P' -- "${trust_paths[@]}")
  # What a merge brought in from off the first-parent chain is never read, and is reported.
  mapfile -t cand < <(comm -23 <(git rev-list --full-history HEAD -- "${trust_paths[@]}" | sort) <(git rev-list --first-parent HEAD -- "${trust_paths[@]}" | sort))
  if ((${#cand[@]})); then
    for c in $(comm -23 <(printf '%s\n' "${cand[@]}" | sort) <(git rev-list --first-parent HEAD | sort)); do
      echo "IGNORED-POLICY $c off HEAD's first-parent chain (a merge brought it in)"; ignored=$((ignored + 1))
    done
  fi
else
  echo "note: not a git checkout: policy history, approvals and checkpoints not checked"
fi
snap '' W                                     # the working tree's policy
if [[ -n $anchor ]]; then                     # an edit never committed counts for nothing either
  snap HEAD H
  for f in as:allowed_signers rev:revoked_keys; do
    if ! cmp -s "$tmp/W.${f%%:*}" "$tmp/H.${f%%:*}"; then
      echo "IGNORED-POLICY working-tree policy/${f#*:} has changes that were never committed"; ignored=$((ignored + 1))
    fi
  done
  echo "policy: anchored by $anchor ($anchor_key), $accepted change(s) accepted, $ignored ignored"
else
  cp "$tmp/W.as" "$tmp/E.as"; cp "$tmp/W.rev" "$tmp/E.rev"
  if ((is_git)); then
    echo "policy: not anchored: the first commit of policy/allowed_signers is not signed by an approver it lists (pin one with --approver)"
    if ((${#approvers[@]})); then echo "policy: --approver given but no anchor was found"; pin_error=1; fi
  fi
fi

# ---- 2. Records: each host's chain, verified against the trusted policy E ------------------
rec_re='^hosts/([a-z0-9][a-z0-9.-]*)/([0-9]{4})/([0-9]{8,})-([a-z-]+)\.yaml$'       # RECORD_PATH_RE
hdr_re=$'^schema: respaldo/v1\ntype: ([a-z-]+)\nhost: ([a-z0-9][a-z0-9.-]*)\nseq: ([1-9][0-9]*)\n'
hdr_re+=$'prev: (null|sha256:[0-9a-f]{64})\nat: ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z)\n\\.$'  # HEADER_RE
bad() { why[$1]+="${why[$1]:+; }$2"; }                  # a problem of record $1
host_problem() { echo "HOST-PROBLEM $host $1"; herr=$((herr + 1)); }
# sigok FILE AT ssh-keygen-options...: FILE.sig is a good respaldo-record signature for $host at
# time AT (2026-11-22T03:15:07.123Z, given to ssh-keygen as 20261122031507Z).
sigok() {
  local f=$1 t=${2%%[.Z]*}; shift 2; t=${t//[-:T]/}
  ssh-keygen -Y verify "$@" -I "$host" -n respaldo-record -s "$f.sig" -Overify-time="${t:-19700101000000}Z" < "$f" >/dev/null 2>&1
}
declare -A why=() sig=() seqof=() typ=() prv=() at=() dig=() signed=() pub=() count=() at_seq=() has_files=() hmax=() hcount=() hdig=()
# The hosts that the policy trusts to sign records (as verifyRecordsFolder reads allowed_signers):
# a host among them without records had its folder deleted.
mapfile -t trusted < <(awk -v kt='^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\\.com)$' '
  { sub(/^[ \t]+/, "") } /^(#|$)/ { next }
  { o = ""; k = 2; if ($2 !~ kt) { o = $2; k = 3 }      # principals [options] keytype key
    if ($k !~ kt || $(k + 1) == "" || tolower(o) ~ /(^|,)cert-authority(,|$)/) next
    if (o ~ /namespaces=/ && o !~ /namespaces="?([^",]*,)*respaldo-record(,|"|$)/) next
    p = $1; gsub(/"/, "", p); n = split(p, a, ",")
    for (i = 1; i <= n; i++) if (a[i] ~ /^[a-z0-9][a-z0-9.-]*$/ && length(a[i]) <= 63) print a[i] }' "$tmp/E.as")
declare -A trusts=(); for h in "${trusted[@]}"; do trusts[$h]=1; done
mapfile -d '' hosts < <({ { find hosts -mindepth 1 ! -type d -print0 2>/dev/null || true; } | cut -z -d/ -f2
  for h in "${trusted[@]}"; do printf '%s\0' "$h"; done; } | sort -zu)
for host in "${hosts[@]}"; do
  herr=0 recs=() order=() why=() sig=() count=() at_seq=()
  while IFS= read -r -d '' f; do               # sort the host's files: records, signatures, the rest
    if [[ ! -f $f || -L $f ]]; then host_problem "unexpected-file $f (not a regular file)"; continue; fi
    has_files[$host]=1
    if [[ $f == *.yaml.sig && ${f%.sig} =~ $rec_re ]]; then sig[${f%.sig}]=1
    elif [[ $f =~ $rec_re ]]; then recs+=("$f")
    elif [[ $f =~ /\.[^/]*\.tmp$ ]]; then echo "WARNING $f temporary file of an interrupted write"
    else host_problem "unexpected-file $f"; fi
  done < <(find "hosts/$host" ! -type d -print0 2>/dev/null | sort -z)
  if [[ -z ${has_files[$host]:-} && -n ${trusts[$host]:-} ]]; then
    host_problem "deleted: policy/allowed_signers trusts it but hosts/$host has no records"
  fi

  for f in "${recs[@]}"; do                    # each record on its own: header, place, signature
    [[ $f =~ $rec_re ]]; year=${BASH_REMATCH[2]} fseq=$((10#${BASH_REMATCH[3]})) ftype=${BASH_REMATCH[4]}
    records=$((records + 1)); read -r d _ < <(sha256sum < "$f") || true; dig[$f]=sha256:$d
    hdr=$(head -n 6 -- "$f"; echo .)
    if [[ $hdr =~ $hdr_re ]]; then
      typ[$f]=${BASH_REMATCH[1]} seqof[$f]=${BASH_REMATCH[3]} prv[$f]=${BASH_REMATCH[4]} at[$f]=${BASH_REMATCH[5]}
      [[ ${BASH_REMATCH[2]} == "$host" ]] || bad "$f" "misplaced: record of host ${BASH_REMATCH[2]}"
      [[ ${seqof[$f]} == "$fseq" && ${typ[$f]} == "$ftype" ]] || bad "$f" "reordered: the file name says seq $fseq ($ftype)"
      [[ ${at[$f]:0:4} == "$year" ]] || bad "$f" "misplaced: written at ${at[$f]}, filed under $year"
    else
      typ[$f]=$ftype seqof[$f]=$fseq prv[$f]='' at[$f]=''
      bad "$f" "invalid: the first six lines are not a respaldo/v1 record header"
    fi
    signed[$f]='' pub[$f]=''
    if [[ -z ${sig[$f]:-} ]]; then bad "$f" "unsigned: ${f##*/}.sig is missing"; continue; fi
    unset "sig[$f]"
    if sigok "$f" "${at[$f]:-1970-01-01T00:00:00Z}" -f "$tmp/E.as" -r "$tmp/E.rev"; then signed[$f]=1
    elif ssh-keygen -Y check-novalidate -n respaldo-record -s "$f.sig" < "$f" >/dev/null 2>&1; then
      signed[$f]=1; bad "$f" "unknown-signer: its key may not sign for $host at ${at[$f]:-?} (policy/allowed_signers, revoked_keys)"
    else bad "$f" "bad-signature: the signature does not match the file (edited after signing, or not a signature)"; fi
    if [[ -n ${at[$f]} && ${typ[$f]} == enrolment ]]; then
      pub[$f]=$(awk '/^[^ ]/ { k = ($0 == "key:") } k && sub(/^  public: /, "") { print; exit }' "$f")
      [[ -n ${pub[$f]} ]] || bad "$f" "invalid: an enrolment without key.public"
    fi
  done

  # The chain, in order of seq (then path): forks, gaps, links to the previous record, the enrolled key.
  for f in "${recs[@]}"; do s=${seqof[$f]}; count[$s]=$((${count[$s]:-0} + 1)); at_seq[$s]=$f; done
  mapfile -t order < <(for f in "${recs[@]}"; do printf '%s\t%s\n' "${seqof[$f]}" "$f"; done | sort -t$'\t' -k1,1n -k2,2)
  max=0 enrolled=''
  for line in "${order[@]}"; do
    s=${line%%$'\t'*} f=${line#*$'\t'}
    if ((s > max + 1)); then
      gap=$((max + 1)); if ((s - 1 > gap)); then gap+="-$((s - 1))"; fi
      host_problem "deleted: record seq $gap missing"
    fi
    max=$((s > max ? s : max))
    if ((count[$s] > 1)); then bad "$f" "forked: ${count[$s]} records claim seq $s"; fi
    if ((s == 1)); then
      [[ ${typ[$f]} == enrolment && ${prv[$f]} == null ]] || bad "$f" "broken-link: the first record must be the enrolment, with prev: null"
    elif ((s > 1 && ${count[$((s - 1))]:-0} == 1)) && [[ -n ${prv[$f]} && ${prv[$f]} != "${dig[${at_seq[$((s - 1))]}]}" ]]; then
      bad "$f" "broken-link: prev is not the sha256 of record seq $((s - 1))"
    fi
    [[ -n ${signed[$f]} ]] || continue         # key continuity, for signatures that are genuine
    if [[ -n ${pub[$f]} ]]; then               # an enrolment must be signed by the key it announces
      printf '%s namespaces="respaldo-record" %s\n' "$host" "${pub[$f]}" > "$tmp/own"
      if sigok "$f" "${at[$f]}" -f "$tmp/own"; then cp "$tmp/own" "$tmp/enrolled"; enrolled=1
      else bad "$f" "wrong-key: not signed by the key it announces"; fi
    elif [[ -n $enrolled ]] && ! sigok "$f" "${at[$f]}" -f "$tmp/enrolled"; then
      bad "$f" "wrong-key: not signed by the key the host enrolled"
    fi
  done

  for f in "${!sig[@]}"; do                    # signatures left without their record
    [[ $f =~ $rec_re ]]
    if ((10#${BASH_REMATCH[3]} == max + 1)); then echo "WARNING $f.sig signature of an interrupted write"
    else host_problem "orphan-signature $f.sig: its record was deleted"; fi
  done
  nb=0
  for line in "${order[@]}"; do
    f=${line#*$'\t'}; if [[ -n ${why[$f]:-} ]]; then echo "BROKEN $f ${why[$f]}"; nb=$((nb + 1)); fi
  done
  genuine=$((genuine + ${#recs[@]} - nb))
  hmax[$host]=$max
  for s in "${!count[@]}"; do hcount["$host $s"]=${count[$s]}; hdig["$host $s"]=${dig[${at_seq[$s]}]}; done
  if ((nb + herr)); then echo "HOST $host broken ${#recs[@]} record(s)"; broken_hosts=$((broken_hosts + 1))
  else echo "HOST $host intact ${#recs[@]} record(s)"; intact=$((intact + 1)); fi
done

# ---- 3 and 4. Approvals and checkpoints (git) ----------------------------------------------
# counts PATH: the walk found every commit that touched PATH (since its last withdrawal) good; else sets $reason.
counts() {
  if [[ -z $anchor ]]; then reason="policy not anchored"; return 1; fi
  case ${hist[$1]:-} in ok) return 0 ;; '') reason="no commit on the first-parent chain since the anchor wrote it" ;; *) reason=${hist[$1]} ;; esac
  return 1
}
field() { sed -n "/^$1: /{s///p;q}"; }         # the first top-level "name: value" line
# The exact forms respaldo writes (anything else, even signed, does not count):
iso='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
approval_re=$'^schema: respaldo/v1\ntype: approval\nrequest: REQ-[0-9]{4}-[0-9]{4}\nrequest_digest: sha256:[0-9a-f]{64}\n'
approval_re+=$'decision: (approved|rejected)\napprover: [^\t\n\'"{[ ][^\n]*\nat: '"$iso"$'\n'
checkpoint_re=$'^schema: respaldo/v1\ntype: checkpoint\nat: '"$iso"$'\nheads:( \\{\\}\n|\n(  [a-z0-9][a-z0-9.-]*: [1-9][0-9]* sha256:[0-9a-f]{64}\n)+)$'
if ((is_git)); then
  while IFS= read -r -d '' name; do
    id=${name%.yaml} reason=''; text=$(git show "HEAD:./approvals/$name" 2>/dev/null; echo .) || true
    if ! counts "approvals/$name"; then :
    elif ! [[ $name =~ ^REQ-[0-9]{4}-[0-9]{4}\.yaml$ ]]; then reason="not an approval: its name is not REQ-YYYY-NNNN.yaml"
    elif ! [[ $text =~ $approval_re ]]; then reason="not in the form respaldo approve writes"
    elif [[ $(field request <<< "$text") != "$id" ]]; then reason="request: is not $id"
    elif ! git cat-file -e "HEAD:./requests/$name" 2>/dev/null; then reason="requests/$name is missing"
    elif [[ $(field request_digest <<< "$text") != "sha256:$(git show "HEAD:./requests/$name" | sha256sum | cut -d' ' -f1)" ]]; then
      reason="request_digest is not the sha256 of requests/$name"; fi
    if [[ -z $reason ]]; then echo "APPROVAL $id valid $(field decision <<< "$text")"; valid=$((valid + 1))
    else echo "APPROVAL $id invalid $reason"; invalid=$((invalid + 1)); fi
  done < <(git ls-tree --full-tree -z --name-only HEAD:./approvals 2>/dev/null)
  for p in "${!hist[@]}"; do                   # approvals that went away without an approver's deletion
    [[ $p == approvals/* && -z ${gone[$p]:-} ]] || continue
    git cat-file -e "HEAD:./$p" 2>/dev/null && continue
    id=${p#approvals/}; echo "APPROVAL ${id%.yaml} invalid deleted by a commit that does not count"; invalid=$((invalid + 1))
  done

  # The checkpoints at HEAD, and those the walk saw that went away without an approver's deletion.
  mapfile -d '' present < <(git ls-tree --full-tree -z --name-only HEAD:./checkpoints 2>/dev/null)
  mapfile -t names < <({ printf '%s\n' "${present[@]}"; for p in "${!hist[@]}"; do [[ $p == checkpoints/* && -z ${gone[$p]:-} ]] && echo "${p#checkpoints/}"; done; } | sed '/^$/d' | sort -u)
  for name in "${names[@]}"; do
    [[ -n $anchor ]] || { echo "CHECKPOINT $name - policy not anchored"; continue; }
    if ! git cat-file -e "HEAD:./checkpoints/$name" 2>/dev/null; then
      echo "CHECKPOINT $name - deleted without an approver's signature"; violated=$((violated + 1)); continue
    fi
    text=$(git show "HEAD:./checkpoints/$name"; echo .); text=${text%.} reason=''
    if ! counts "checkpoints/$name" || { ! [[ $name =~ ^[0-9]{8}T[0-9]{6}Z\.yaml$ && $text =~ $checkpoint_re ]] && reason="not in the form respaldo checkpoint writes"; }; then
      echo "CHECKPOINT $name - does not count: $reason"; violated=$((violated + 1)); continue
    fi
    while read -r h s d; do                    # "  host: seq sha256:hex" under heads:
      h=${h%:}; [[ $s =~ ^[1-9][0-9]*$ ]] || continue
      if ((${hmax[$h]:-0} < s)); then echo "CHECKPOINT $name $h truncated"; violated=$((violated + 1))
      elif [[ ${hcount["$h $s"]:-0} == 1 && ${hdig["$h $s"]} == "$d" ]]; then echo "CHECKPOINT $name $h ok"
      else echo "CHECKPOINT $name $h diverged"; violated=$((violated + 1)); fi
    done < <(git show "HEAD:./checkpoints/$name" | awk '/^heads:/ { h = 1; next } h && /^  [^ ]/ { print substr($0, 3); next } { h = 0 }')
  done
fi

# ---- 5. Summary ------------------------------------------------------------------------------
echo "summary: $records records, $genuine genuine, $((records - genuine)) broken; hosts: $intact intact, $broken_hosts broken;" \
  "approvals: $valid valid, $invalid invalid; policy changes ignored: $ignored; checkpoints violated: $violated"
(((records - genuine) + broken_hosts + invalid + ignored + violated + pin_error == 0))
