#!/usr/bin/env bash
# CTest cases of the keel tool: cli_test.sh CASE. Each case runs in a fresh
# directory and asserts exit codes and output. Needs KEEL (the tool) and
# KEEL_TEST_WRITER (tools/tests/test_writer.cc) in the environment.
set -u
: "${KEEL:?KEEL must name the keel binary}"
case_name=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/keel-cli-$case_name.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -z "${KEEL_KEEP_TEST_FILES:-}" ]; then rm -rf "$work"; else echo "files kept in $work"; fi
}
trap cleanup EXIT
cd "$work" || exit 1

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run EXPECTED_RC CMD...: runs CMD with stdout in $work/out, stderr in $work/err.
run() {
  local want=$1
  shift
  "$@" >out 2>err
  local rc=$?
  if [ "$rc" != "$want" ]; then
    fail "'$*' exited $rc, expected $want"
    sed 's/^/  stdout: /' out | head -20
    sed 's/^/  stderr: /' err | head -20
  fi
}
# The error contract: exactly one line on stderr, "keel: ...", matching a pattern.
err_line() {
  local n
  n=$(wc -l <err)
  [ "$n" = 1 ] || fail "stderr has $n lines, expected one: $(cat err)"
  grep -q '^keel: ' err || fail "stderr does not start with 'keel: ': $(cat err)"
  grep -Eq -- "$1" err || fail "stderr does not match /$1/: $(cat err)"
  if grep -Eiq 'terminate called|stack|Segmentation|Aborted|what\(\)' err; then fail "crash text on stderr: $(cat err)"; fi
}
has() { grep -Eq -- "$2" "$1" || fail "$1 does not match /$2/: $(head -c 2000 "$1")"; }
hasnt() { if grep -Eq -- "$2" "$1"; then fail "$1 matches /$2/"; fi; }
same() { cmp -s "$1" "$2" || { fail "$1 and $2 differ"; diff "$1" "$2" | head -20; }; }

# Root offset of a structure, from info --json.
root_of() {
  "$KEEL" info "$1" --json | grep -o "\"name\":\"$2\",\"kind\":\"[a-z_]*\",\"key_type\":\"[^\"]*\",\"value_type\":\"[^\"]*\",\"root\":[0-9]*" |
    sed 's/.*"root"://'
}
u64_at() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
sorted_dump() { "$KEEL" -q dump "$@" | LC_ALL=C sort; }

# A store with one structure of each flavour.
make_store() {
  "$KEEL" -q create "$1" --size 1MiB --max-size 1GiB >/dev/null || fail "create $1"
  for i in $(seq 1 500); do echo "{\"key\":$i,\"value\":$((i * 7 - 1000))}"; done >ints.jsonl
  "$KEEL" -q load "$1" h --kind hash --key-type u64 --value-type i32 -i ints.jsonl >/dev/null || fail "load h"
  "$KEEL" -q load "$1" t --kind tree --key-type i64 --value-type i32 -i ints.jsonl >/dev/null || fail "load t"
  printf '{"key":"alpha","value":"1"}\n{"key":"beta","value":"2"}\n' >words.jsonl
  "$KEEL" -q load "$1" bm --kind hash --key-type bytes --value-type bytes -i words.jsonl >/dev/null || fail "load bm"
  "$KEEL" -q load "$1" bt --kind tree --key-type bytes --value-type bytes -i words.jsonl >/dev/null || fail "load bt"
}

start_writer() {  # start_writer FILE hold|churn
  "$KEEL_TEST_WRITER" "$1" "$2" ready &
  pids+=($!)
  for _ in $(seq 1 200); do [ -f ready ] && return; sleep 0.05; done
  fail "test writer did not start"
}

# ---------------------------------------------------------------- cases

case_usage() {
  run 2 "$KEEL"
  err_line 'subcommand|required'
  run 2 "$KEEL" frobnicate x
  err_line 'frobnicate|subcommand|extras'
  run 2 "$KEEL" info
  err_line 'FILE is required'
  run 2 "$KEEL" dump s.keel
  err_line 'NAME is required'
  run 0 "$KEEL" --help
  has out 'Exit codes'
  run 0 "$KEEL" --version
  has out '^keel [0-9]+\.[0-9]+'
}

case_create() {
  run 0 "$KEEL" create s.keel --size 2MiB --max-size 4GiB --durability sync
  has out 'created s.keel: 2.0 MiB reserved, max size 4.0 GiB, durability sync'
  [ -f s.keel ] && [ -f s.keel-log ] && [ -f s.keel-journal ] || fail "store files missing"
  run 0 "$KEEL" info s.keel
  has out 'durability +sync'
  has out 'file size +2.0 MiB \(2097152 bytes\), max size 4.0 GiB'
  run 3 "$KEEL" create s.keel
  err_line 's.keel: already exists'
  run 2 "$KEEL" create t.keel --size 12parsecs
  err_line "--size: '12parsecs' is not a size"
  run 2 "$KEEL" create t.keel --durability fast
  err_line "'fast' is not one of sync, batch, checkpoint"
  run 2 "$KEEL" create t.keel --size 2GiB --max-size 1GiB
  err_line 'larger than --max-size'
  [ ! -e t.keel ] || fail "a failed create left t.keel"
  run 3 "$KEEL" create nodir/x.keel
  err_line 'nodir/x.keel'
}

case_info() {
  make_store s.keel
  run 0 "$KEEL" info s.keel
  has out '^format +version 1, page size 4096'
  has out '^superblock 0 +valid'
  has out '^superblock 1 +valid'
  has out '^last close +clean'
  has out '^durability +batch'
  has out '^last checkpoint +LSN [0-9]+ at '
  has out '^log +'
  has out '^arena +.* allocated, .* free \(reusable\); .* reserved beyond it'
  has out '^structures +4'
  has out '^  h +hash_map +u64 +i32 +500 '
  has out '^  t +tree_map +i64 +i32 +500 '
  has out '^  bm +bytes_map +bytes +bytes +2 '
  has out '^  bt +bytes_tree +bytes +bytes +2 '
  run 0 "$KEEL" info s.keel --json
  [ "$(wc -l <out)" = 1 ] || fail "--json is not one line"
  has out '^\{"path":"s.keel","format_version":1,'
  has out '"superblocks":\[\{"slot":0,"valid":true'
  has out '"clean_close":true'
  has out '"sizes":\{"file":1048576,"max":1073741824,'
  has out '"durability":"batch"'
  has out '"name":"t","kind":"tree_map","key_type":"i64","value_type":"i32","root":[0-9]+,"entries":500'
  # One damaged superblock: info still works and says which one.
  poke s.keel 100 'X'
  run 0 "$KEEL" info s.keel
  has out '^superblock 0 +INVALID \(checksum mismatch\)'
  has out '^superblock 1 +valid, newest'
  # A writer has it open: not a clean close, and a writer is there.
  start_writer s.keel hold
  run 0 "$KEEL" info s.keel
  has out '^writer +a process has the store open for writing'
  has out '^  held +hash_map +u64 +u64 +100 '
}

case_bad_files() {
  for cmd in "info @" "check @" "dump @ h" "checkpoint @" "backup @ copy.keel" "compact @ copy.keel" "load @ h"; do
    run 3 "$KEEL" ${cmd//@/missing.keel}
    err_line 'missing.keel: no such file'
  done
  head -c 100000 /dev/urandom >junk.bin
  run 3 "$KEEL" info junk.bin
  err_line 'junk.bin: .*not a Keel store'
  run 3 "$KEEL" dump junk.bin h
  err_line 'junk.bin: .*not a Keel store'
  run 3 "$KEEL" check junk.bin
  err_line 'junk.bin: not a Keel store'
  run 3 "$KEEL" load junk.bin h -i /dev/null
  err_line 'junk.bin: .*not a Keel store'
  : >empty.keel
  run 3 "$KEEL" info empty.keel
  err_line 'empty.keel: '
  mkdir adir
  run 3 "$KEEL" info adir
  err_line 'adir: is a directory'
  [ ! -e missing.keel ] || fail "a command created missing.keel"
  # The store's log deleted.
  make_store s.keel
  rm s.keel-log
  run 3 "$KEEL" dump s.keel h
  err_line 's.keel-log: missing'
}

case_dump() {
  make_store s.keel
  run 0 "$KEEL" dump s.keel t
  [ "$(wc -l <out)" = 500 ] || fail "dump t: $(wc -l <out) lines"
  [ "$(head -1 out)" = '{"key":1,"value":-993}' ] || fail "first line: $(head -1 out)"
  [ "$(tail -1 out)" = '{"key":500,"value":2500}' ] || fail "last line: $(tail -1 out)"
  run 0 "$KEEL" dump s.keel h --format csv -o h.csv
  [ "$(head -1 h.csv)" = 'key,value' ] || fail "csv header"
  grep -qx '250,750' h.csv || fail "csv row 250,750 missing"
  [ "$(wc -l <h.csv)" = 501 ] || fail "csv lines"
  run 3 "$KEEL" dump s.keel nosuch
  err_line "no structure named 'nosuch' \(it holds: h, t, bm, bt\)"
  run 2 "$KEEL" dump s.keel h --format xml
  err_line "--format: 'xml' is not jsonl or csv"
  if [ -w /dev/full ]; then
    run 3 "$KEEL" dump s.keel h -o /dev/full
    err_line 'write failed'
  fi
  # A reader's dump while a writer holds the store.
  start_writer s.keel hold
  run 0 "$KEEL" dump s.keel held
  [ "$(wc -l <out)" = 100 ] || fail "dump of a store a writer holds"
}

# Every type the tool handles, dumped, loaded into a new store and dumped
# again, in both formats.
case_roundtrip() {
  "$KEEL" -q create a.keel >/dev/null
  printf '%s\n' '{"key":-5,"value":1.5}' '{"key":32767,"value":-0.25}' '{"key":-32768,"value":1e+300}' \
    '{"key":0,"value":"nan"}' '{"key":7,"value":"-inf"}' '{"key":8,"value":5e-324}' >f.jsonl
  "$KEEL" -q load a.keel hf --kind hash --key-type i16 --value-type f64 -i f.jsonl >/dev/null || fail "load hf"
  printf '%s\n' '{"key":-9223372036854775808,"value":0}' '{"key":9223372036854775807,"value":255}' \
    '{"key":-1,"value":1}' '{"key":0,"value":2}' >t8.jsonl
  "$KEEL" -q load a.keel t8 --kind tree --key-type i64 --value-type u8 -i t8.jsonl >/dev/null || fail "load t8"
  printf '%s\n' '{"key":4294967295,"value":"0011223344556677"}' '{"key":0,"value":"ffffffffffffffff"}' >tf.jsonl
  "$KEEL" -q load a.keel tf --kind tree --key-type u32 --value-type fixed:8:8:0x1234 -i tf.jsonl >/dev/null || fail "load tf"
  printf '%s\n' '{"key":"deadbeef","value":"000102030405060708090a0b"}' >hx.jsonl
  "$KEEL" -q load a.keel hx --kind hash --key-type fixed:4 --value-type fixed:12:4:my_struct -i hx.jsonl >/dev/null || fail "load hx"
  printf '%s\n' '{"key":-128,"value":3.25}' '{"key":127,"value":-1e-10}' >s8.jsonl
  "$KEEL" -q load a.keel s8 --kind tree --key-type i8 --value-type f32 -i s8.jsonl >/dev/null || fail "load s8"
  # Byte strings: UTF-8, escapes, CSV specials, bytes that are not UTF-8,
  # text that starts with "hex:", an empty value.
  printf '%s\n' '{"key":"plain","value":"caf\u00e9 \u2603 \ud83d\ude00"}' '{"key":"a,\"b\"","value":"line1\nline2\r\n"}' \
    '{"key":"tab\there","value":"ctl \u0001 \u007f"}' '{"key":"hex:ff00fe","value":"hex:6865783a7a"}' \
    '{"key":"empty","value":""}' '{"key":" spaced ","value":","}' >b.jsonl
  for k in hash tree; do
    "$KEEL" -q load a.keel "b$k" --kind $k --key-type bytes --value-type bytes -i b.jsonl >/dev/null || fail "load b$k"
  done
  run 0 "$KEEL" dump a.keel hf
  has out '^\{"key":0,"value":"nan"\}$'
  has out '^\{"key":-32768,"value":1e\+300\}$'
  has out '^\{"key":7,"value":"-inf"\}$'
  run 0 "$KEEL" dump a.keel t8
  [ "$(head -1 out)" = '{"key":-9223372036854775808,"value":0}' ] || fail "t8 order: $(head -1 out)"
  [ "$(sed -n 2p out)" = '{"key":-1,"value":1}' ] || fail "t8 order: $(sed -n 2p out)"
  run 0 "$KEEL" dump a.keel tf
  [ "$(head -1 out)" = '{"key":0,"value":"ffffffffffffffff"}' ] || fail "tf: $(head -1 out)"
  run 0 "$KEEL" dump a.keel hx
  has out '^\{"key":"deadbeef","value":"000102030405060708090a0b"\}$'
  run 0 "$KEEL" dump a.keel btree
  has out '^\{"key":"hex:ff00fe","value":"hex:6865783a7a"\}$'
  has out '^\{"key":"a,\\"b\\"","value":"line1\\nline2\\r\\n"\}$'
  has out '^\{"key":"tab\\there","value":"hex:63746c2001207f"\}$'
  run 0 "$KEEL" info a.keel
  has out '^  hx +hash_map +fixed:4:1:0x0 +fixed:12:4:0x[0-9a-f]+ +1 '
  "$KEEL" -q create b.keel >/dev/null
  "$KEEL" -q create c.keel >/dev/null
  for n in hf t8 tf hx s8 bhash btree; do
    spec=$("$KEEL" info a.keel --json | grep -o "\"name\":\"$n\",\"kind\":\"[a-z_]*\",\"key_type\":\"[^\"]*\",\"value_type\":\"[^\"]*\"")
    kind=$(echo "$spec" | sed 's/.*"kind":"\([a-z_]*\)".*/\1/')
    case $kind in *tree*) kind=tree ;; *) kind=hash ;; esac
    kt=$(echo "$spec" | sed 's/.*"key_type":"\([^"]*\)".*/\1/')
    vt=$(echo "$spec" | sed 's/.*"value_type":"\([^"]*\)".*/\1/')
    "$KEEL" -q dump a.keel $n -o $n.jsonl
    "$KEEL" -q dump a.keel $n --format csv -o $n.csv
    run 0 "$KEEL" load b.keel $n --kind $kind --key-type "$kt" --value-type "$vt" -i $n.jsonl
    run 0 "$KEEL" load c.keel $n --kind $kind --key-type "$kt" --value-type "$vt" --format csv -i $n.csv
    sorted_dump a.keel $n >a.$n
    sorted_dump b.keel $n >b.$n
    sorted_dump c.keel $n >c.$n
    same a.$n b.$n
    same a.$n c.$n
    [ -s a.$n ] || fail "empty dump of $n"
  done
  # The fingerprint named by a type name is the one info prints.
  run 0 "$KEEL" info b.keel --json
  has out '"name":"hx","kind":"hash_map","key_type":"fixed:4:1:0x0","value_type":"fixed:12:4:0x'
}

case_load() {
  make_store s.keel
  # Into an existing structure: types come from the catalog; put replaces.
  printf '%s\n' '{"key":1,"value":42}' '{"key":1000,"value":-1}' '' '  {"value":5, "key":2}  ' >more.jsonl
  run 0 "$KEEL" load s.keel h -i more.jsonl
  has out "loaded 3 entries into 'h' \(1 added, 2 replaced\)"
  run 0 "$KEEL" dump s.keel h
  grep -qx '{"key":1,"value":42}' out || fail "h[1] not replaced"
  grep -qx '{"key":2,"value":5}' out || fail "h[2] not replaced"
  # From standard input, CSV with the header dump writes.
  printf 'key,value\nx,"y, z"\n"multi\nline",v\n' | "$KEEL" -q load s.keel bm --format csv >out 2>err || fail "csv from stdin: $(cat err)"
  run 0 "$KEEL" dump s.keel bm
  grep -qx '{"key":"x","value":"y, z"}' out || fail "csv quoted comma"
  grep -qx '{"key":"multi\\nline","value":"v"}' out || fail "csv multi-line field"
  # Type mismatch against the catalog.
  run 3 "$KEEL" load s.keel h --key-type u32 -i more.jsonl
  err_line "'h' is a hash_map<u64, i32>, not --key-type u32"
  run 3 "$KEEL" load s.keel t --kind hash -i more.jsonl
  err_line "'t' is a tree_map<i64, i32>, not --kind hash"
  # A new structure needs its kind and types.
  run 2 "$KEEL" load s.keel new -i more.jsonl
  err_line "no structure named 'new'; give --kind, --key-type and --value-type"
  run 2 "$KEEL" load s.keel new --kind list --key-type u64 --value-type u64 -i more.jsonl
  err_line "--kind: 'list' is not hash or tree"
  run 2 "$KEEL" load s.keel new --kind hash --key-type u65 --value-type u64 -i more.jsonl
  err_line "--key-type: 'u65' is not a type"
  run 2 "$KEEL" load s.keel new --kind hash --key-type f64 --value-type u64 -i more.jsonl
  err_line "floating-point keys"
  run 2 "$KEEL" load s.keel new --kind tree --key-type bytes --value-type u64 -i more.jsonl
  err_line "byte-string keys go with byte-string values"
  run 3 "$KEEL" load s.keel new --kind hash --key-type u64 --value-type u64 -i nosuch.jsonl
  err_line 'nosuch.jsonl: cannot open'
  run 0 "$KEEL" info s.keel
  hasnt out '^  new '
  # An empty input creates an empty structure.
  run 0 "$KEEL" load s.keel empty --kind tree --key-type u16 --value-type u16 -i /dev/null
  run 0 "$KEEL" info s.keel
  has out '^  empty +tree_map +u16 +u16 +0 '
}

# Malformed input: the line is named, nothing is loaded, the store is unchanged.
case_load_errors() {
  make_store s.keel
  sorted_dump s.keel h >before.h
  sorted_dump s.keel bm >before.bm
  bad() {  # bad LINE_NO PATTERN FORMAT STRUCTURE [load options] < input
    local line=$1 pat=$2 format=$3 name=$4
    shift 4
    cat >input
    run 3 "$KEEL" load s.keel "$name" --format "$format" -i input "$@"
    err_line "input, line $line: $pat; nothing was loaded"
  }
  printf '{"key":1,"value":1}\n{"key":2,"value":2}\n{"key":3,"value":3\n' | bad 3 "expected ',' or '\}'" jsonl h
  printf '{"key":1,"value":1}\nnot json\n' | bad 2 "expected '\{'" jsonl h
  printf '{"key":1,"value":1}\n{"key":1}\n' | bad 2 'missing "value"' jsonl h
  printf '{"key":1,"value":1,"extra":2}\n' | bad 1 'unknown member "extra"' jsonl h
  printf '{"key":1,"value":1}\n{"key":-1,"value":1}\n' | bad 2 'key: -1 is out of range for u64|key: .-1. is not' jsonl h
  printf '{"key":1,"value":4294967296}\n' | bad 1 'value: 4294967296 is out of range for i32' jsonl h
  printf '{"key":1.5,"value":1}\n' | bad 1 "key: '1.5' is not an integer" jsonl h
  printf '{"key":1,"value":1e400}\n' | bad 1 "value: 1e400 is out of range for f32" jsonl fl --kind tree --key-type u8 --value-type f32
  printf '{"key":"abc","value":"ok"}\n{"key":"hex:zz","value":"x"}\n' | bad 2 "key: 'z' is not a hex digit" jsonl bm
  printf '{"key":"a","value":"\\q"}\n' | bad 1 "unknown escape" jsonl bm
  printf '{"key":"a","value":"\\ud800"}\n' | bad 1 "unpaired surrogate" jsonl bm
  printf '{"key":"a","value":7}\n' | bad 1 "value: a byte string must be a JSON string" jsonl bm
  printf 'key,value\n1,2\n3,4,5\n' | bad 3 'more than two fields' csv h
  printf 'key,value\n1,2\n"3,4\n' | bad 3 'unterminated quoted field' csv h
  printf '1,2\n3\n' | bad 2 'one field where two belong' csv h
  printf '1,2\n3,x"y"\n' | bad 2 'a quote inside an unquoted field' csv h
  printf '1,2\nabc,4\n' | bad 2 "key: 'abc' is not an integer" csv h
  long=$(head -c 3000 /dev/zero | tr '\0' 'k')
  printf 'a,b\n%s,v\n' "$long" | bad 2 'key' csv bm
  # A new structure is not created by a failed load.
  printf '{"key":1,"value":1}\n{"key":2}\n' | bad 2 'missing "value"' jsonl fresh --kind tree --key-type u64 --value-type u64
  run 0 "$KEEL" info s.keel
  hasnt out '^  fresh '
  sorted_dump s.keel h >after.h
  sorted_dump s.keel bm >after.bm
  same before.h after.h
  same before.bm after.bm
  run 0 "$KEEL" check s.keel
}

# --batch commits as it goes; a failure says what is committed and how to resume.
case_load_batches() {
  "$KEEL" -q create s.keel >/dev/null
  for i in $(seq 1 100); do echo "{\"key\":$i,\"value\":$i}"; done >good.jsonl
  { head -45 good.jsonl; echo '{"key":46,"value":}'; tail -n +47 good.jsonl; } >bad.jsonl
  run 3 "$KEEL" load s.keel b --kind tree --key-type u32 --value-type u32 --batch 20 -i bad.jsonl
  err_line 'line 46: .*the 40 entries before line 41 were committed in earlier batches \(resume with --start-line 41\)'
  [ "$("$KEEL" -q dump s.keel b | wc -l)" = 40 ] || fail "batches before the failure not committed"
  run 0 "$KEEL" load s.keel b --batch 20 --start-line 41 -i good.jsonl
  has out 'loaded 60 entries'
  "$KEEL" -q dump s.keel b >got
  "$KEEL" -q create ref.keel >/dev/null
  "$KEEL" -q load ref.keel b --kind tree --key-type u32 --value-type u32 -i good.jsonl >/dev/null
  "$KEEL" -q dump ref.keel b >want
  same want got
}

case_check_clean() {
  make_store s.keel
  run 0 "$KEEL" check s.keel
  has out '^check s.keel: 4 structures'
  has out '^clean$'
  run 0 "$KEEL" check s.keel --json
  has out '"clean":true'
  # While a writer has the store open.
  start_writer s.keel hold
  run 0 "$KEEL" check s.keel
  has out '^clean$'
}

case_check_corrupt_hash() {
  make_store s.keel
  root=$(root_of s.keel h)
  [ -n "$root" ] || fail "no root for h"
  poke s.keel "$root" 'Z'  # the map root's magic
  run 1 "$KEEL" check s.keel
  has out "PROBLEM: hash_map 'h', offset $root: "
  has out '^1 problem found$|^[0-9]+ problems found$'
  run 1 "$KEEL" check s.keel --json
  has out "\"clean\":false"
  has out "\\{\"where\":\"hash_map 'h'\",\"offset\":$root,"
  # The other structures still dump; the damaged one gives one line.
  run 0 "$KEEL" dump s.keel t
  run 3 "$KEEL" dump s.keel h
  err_line "s.keel: .*$root"
}

case_check_corrupt_tree() {
  make_store s.keel
  root=$(root_of s.keel t)
  node=$(u64_at s.keel $((root + 16)))
  [ -n "$node" ] && [ "$node" -gt 0 ] || fail "no root node for t"
  poke s.keel "$node" 'X'  # the node's magic
  run 1 "$KEEL" check s.keel
  has out "PROBLEM: tree_map 't', offset $node: "
}

case_check_corrupt_catalog() {
  make_store s.keel
  poke s.keel 12288 'Q'  # the meta page magic
  run 1 "$KEEL" check s.keel
  has out 'PROBLEM: meta page'
  run 3 "$KEEL" dump s.keel h
  err_line 'meta page'
  # Both superblocks smashed: still a (damaged) store, since its log is there.
  make_store u.keel
  poke u.keel 0 'XX'
  poke u.keel 4096 'XX'
  run 1 "$KEEL" check u.keel
  has out 'PROBLEM: superblock'
  run 3 "$KEEL" info u.keel
  err_line 'u.keel: '
}

case_checkpoint() {
  "$KEEL" -q create s.keel --durability checkpoint >/dev/null
  # A writer that dies leaves its log; checkpoint recovers and empties it.
  start_writer s.keel hold
  kill -9 "${pids[0]}"
  wait "${pids[0]}" 2>/dev/null
  run 0 "$KEEL" info s.keel
  has out '^last close +not clean'
  run 0 "$KEEL" checkpoint s.keel
  has out '^checkpointed s.keel: LSN [0-9]+, log .* -> 0 B'
  run 0 "$KEEL" info s.keel
  has out '^last close +clean'
  has out '^durability +checkpoint'
  has out '^log +0 B since the checkpoint'
  has out '^  held +hash_map +u64 +u64 +100 '
  # Another process writing: busy, one line.
  rm -f ready
  start_writer s.keel hold
  run 3 "$KEEL" checkpoint s.keel
  err_line 'writer lock'
}

case_backup() {
  make_store s.keel
  run 0 "$KEEL" backup s.keel copy.keel
  has out '^backed up s.keel -> copy.keel: consistent as of LSN [0-9]+'
  run 0 "$KEEL" check copy.keel
  for n in h t bm bt; do
    sorted_dump s.keel $n >a
    sorted_dump copy.keel $n >b
    same a b
  done
  run 3 "$KEEL" backup s.keel copy.keel
  err_line 'copy.keel'
  # While a writer keeps committing.
  start_writer s.keel churn
  run 0 "$KEEL" backup s.keel live.keel
  lsn=$(sed -n 's/.*consistent as of LSN \([0-9]*\).*/\1/p' out)
  run 0 "$KEEL" check live.keel
  has out '^clean$'
  run 0 "$KEEL" info live.keel --json
  has out '"last_lsn":'"$lsn"','
  n=$("$KEEL" -q dump live.keel churn | wc -l)
  [ "$n" -ge 100 ] || fail "backup holds $n churn entries"
}

case_compact() {
  "$KEEL" -q create s.keel --max-size 1GiB >/dev/null
  for i in $(seq 1 3000); do echo "{\"key\":$i,\"value\":\"value number $i\"}"; done >big.jsonl
  "$KEEL" -q load s.keel m --kind hash --key-type u64 --value-type bytes -i big.jsonl >/dev/null 2>&1
  for i in $(seq 1 3000); do echo "$i,$i"; done >n.csv
  "$KEEL" -q load s.keel h --kind hash --key-type u32 --value-type u64 --format csv -i n.csv >/dev/null || fail "load h"
  "$KEEL" -q load s.keel t --kind tree --key-type i32 --value-type u64 --format csv --batch 100 -i n.csv >/dev/null || fail "load t"
  "$KEEL" -q load s.keel bt --kind tree --key-type bytes --value-type bytes --format csv -i n.csv >/dev/null || fail "load bt"
  run 0 "$KEEL" compact s.keel small.keel
  has out '^compacted s.keel -> small.keel: 3 structures, 9000 entries|^compacted s.keel -> small.keel: [0-9]+ structures'
  has out '^  file size +.* -> '
  run 0 "$KEEL" check small.keel
  has out '^clean$'
  for n in h t bt; do
    sorted_dump s.keel $n >a
    sorted_dump small.keel $n >b
    same a b
  done
  run 0 "$KEEL" info small.keel --json
  free=$(sed 's/.*"free":\([0-9]*\).*/\1/' out)
  run 0 "$KEEL" info s.keel --json
  free0=$(sed 's/.*"free":\([0-9]*\).*/\1/' out)
  [ "$free" -lt "$free0" ] || fail "compact did not reduce free space ($free0 -> $free)"
  [ "$(stat -c %s small.keel)" -le "$(stat -c %s s.keel)" ] || fail "compacted file is larger"
  run 3 "$KEEL" compact s.keel small.keel
  err_line 'small.keel: already exists'
  ls small.keel.compacting-* >/dev/null 2>&1 && fail "temporary files left"
  start_writer s.keel hold
  run 3 "$KEEL" compact s.keel other.keel
  err_line 'writer lock.*keel backup'
  [ ! -e other.keel ] || fail "a failed compact left other.keel"
}

# Progress on stderr: plain lines when stderr is not a terminal, a bar on a
# terminal (through script(1)), nothing with -q. KEEL_PROGRESS_INTERVAL_MS=0
# removes the start delay and the rate limit so that small stores show it.
case_progress() {
  make_store s.keel
  export KEEL_PROGRESS_INTERVAL_MS=0
  run 0 "$KEEL" dump s.keel h -o h.jsonl
  has err '^dump: +[0-9.]+% [0-9]+/500 entries, .* entries/s'
  has err '^dump: done, 500 entries in '
  hasnt err $'\r'
  run 0 "$KEEL" load s.keel h2 --kind hash --key-type u64 --value-type i32 -i h.jsonl
  has err '^load: +[0-9.]+% .*B/.*B, .*B/s'
  has err '^load: done, '
  run 0 "$KEEL" compact s.keel c.keel
  has err '^compact: +[0-9.]+% [0-9]+/1504 entries'
  run 0 "$KEEL" check s.keel
  has err '^check: '
  run 0 "$KEEL" backup s.keel b.keel
  has err '^backup: '
  run 0 "$KEEL" -q dump s.keel h -o /dev/null
  [ ! -s err ] || fail "-q still prints progress: $(cat err)"
  if command -v script >/dev/null; then
    script -qec "$KEEL dump s.keel t -o /dev/null" /dev/null >tty.out 2>&1 || fail "dump on a terminal"
    grep -q $'\r''dump: \[=*>* *\] ' tty.out || fail "no progress bar on a terminal: $(od -c tty.out | head -5)"
    grep -q 'dump: done, 500 entries' tty.out || fail "no summary on a terminal"
  fi
  unset KEEL_PROGRESS_INTERVAL_MS
  run 0 "$KEEL" dump s.keel h -o /dev/null
  [ ! -s err ] || fail "a short dump printed progress: $(cat err)"
}

case_bench() {
  mkdir bin
  cp "$KEEL" bin/keel
  run 3 bin/keel bench
  err_line 'bench: the benchmark program is not built'
  printf '#!/bin/sh\necho "fake bench $*"\n' >bin/keel-bench
  chmod +x bin/keel-bench
  run 0 bin/keel bench /tmp/somewhere
  has out '^fake bench --quick /tmp/somewhere$'
}

type "case_$case_name" >/dev/null 2>&1 || { echo "no such case: $case_name"; exit 2; }
"case_$case_name"
if [ "$failures" -gt 0 ]; then
  echo "$case_name: $failures failure(s)"
  exit 1
fi
echo "$case_name: ok"
