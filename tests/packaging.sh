#!/usr/bin/env bash
# The appliance: checks the systemd units, builds the Debian package with
# cargo-deb, inspects it, and runs the installed binary from a throwaway root.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "-- systemd units"
# verify wants ExecStart= to exist: check copies that point at the built binary.
mkdir -p "$work/units"
for unit in berth.service berth-report.service berth-report.timer berth-ground.service; do
  sed "s#/usr/bin/berth#$PWD/target/release/berth#g" "systemd/$unit" > "$work/units/$unit"
done
test -x target/release/berth || cargo build --release -q
# verify exits 0 on a misspelt or unknown setting, only warning "Unknown key
# ..., ignoring": any output at all fails the check.
complaints=$(systemd-analyze verify "$work/units/berth.service" "$work/units/berth-report.service" "$work/units/berth-report.timer" "$work/units/berth-ground.service" 2>&1)
if [ -n "$complaints" ]; then echo "$complaints"; echo "systemd-analyze verify complained about the units"; exit 1; fi
# An allow list means nothing without the deny; a state directory is private.
for unit in systemd/*.service; do
  if grep -q '^IPAddressAllow=' "$unit" && ! grep -qx 'IPAddressDeny=any' "$unit"; then
    echo "$unit: IPAddressAllow= without IPAddressDeny=any allows everything"; exit 1
  fi
  if grep -q '^StateDirectory=' "$unit" && ! grep -qx 'StateDirectoryMode=0700' "$unit"; then
    echo "$unit: StateDirectory= without StateDirectoryMode=0700"; exit 1
  fi
done
# Exposure must stay at or below 2.0 (the threshold is in tenths).
systemd-analyze security --offline=yes --threshold=20 systemd/berth.service | tail -n 1
systemd-analyze security --offline=yes --threshold=20 systemd/berth-ground.service | tail -n 1

echo "-- Debian package"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
cargo deb --quiet --output "$work/"
deb=$(ls "$work"/berth_*.deb)
dpkg-deb -I "$deb" | grep -E "^ (Package|Version|Depends|Architecture):"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/berth ./etc/berth/berth.toml ./lib/systemd/system/berth.service \
         ./lib/systemd/system/berth-report.service ./lib/systemd/system/berth-report.timer \
         ./lib/systemd/system/berth-ground.service \
         ./usr/lib/sysusers.d/berth.conf ./usr/share/doc/berth/README.md \
         ./usr/share/doc/berth/manual.md ./usr/share/doc/berth/SPEC.md; do
  grep -q " $f\$" <<<"$contents" || { echo "missing from the package: $f"; exit 1; }
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/berth/berth.toml
for script in postinst prerm postrm; do
  dpkg-deb -I "$deb" "$script" >/dev/null
done
echo "package contents and conffiles ok"
if command -v lintian >/dev/null; then
  echo "-- lintian (reported, not fatal; see the README)"
  lintian --tag-display-limit 0 "$deb" || true
fi

# Install into a throwaway root (files only; maintainer scripts need a booted
# system) and run the installed binary.
root="$work/root"
dpkg-deb -x "$deb" "$root"
"$root/usr/bin/berth" --version
"$root/usr/bin/berth" --config "$root/etc/berth/berth.toml" config show >/dev/null
"$root/usr/bin/berth" --config "$root/etc/berth/berth.toml" init --data-dir "$work/state" \
  --installation-id deb-test --vessel-type ship --vessel-name "Package test" >/dev/null
"$root/usr/bin/berth" --config "$root/etc/berth/berth.toml" --data-dir "$work/state" log verify
for script in postinst prerm postrm; do sh -n "packaging/debian/$script"; done
# postinst's init: the secrets go to a 0600 file, and nothing secret is printed.
printed=$("$root/usr/bin/berth" --config "$root/etc/berth/berth.toml" init --data-dir "$work/state2" \
  --installation-id deb-test-2 --vessel-type ship --vessel-name "Package test" --secrets-file "$work/initial-secrets")
test "$(stat -c %a "$work/initial-secrets")" = 600
password=$(sed -n 's/^crew_password = //p' "$work/initial-secrets")
test -n "$password" && ! grep -qF -- "$password" <<<"$printed"
grep -q -- '--secrets-file' packaging/debian/postinst
echo "installed binary runs: init and log verify from the package's paths"
