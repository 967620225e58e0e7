#!/bin/sh
# Installs skywire and viscript as self-contained executables under a prefix, with systemd units
# (docs/operations.md "Installing"). Needs the .NET 10 SDK to build; the installed programs need no .NET runtime.
#
#   deploy/install.sh [--prefix DIR] [--runtime RID] [--systemd-dir DIR] [--sysusers-dir DIR]
#
#   --prefix DIR        install root (default /opt/skywire): DIR/lib/skywire, DIR/lib/viscript (the published
#                       programs), DIR/bin/skywire, DIR/bin/viscript and DIR/bin/viscript-cli (symlinks), DIR/share/skywire/systemd
#                       (the units with DIR filled in), DIR/share/skywire/doc.
#   --runtime RID       linux-x64 or linux-arm64 (default: this machine's).
#   --systemd-dir DIR   also copy the units there (e.g. /etc/systemd/system); then run
#                       'systemctl daemon-reload' and enable the ones you want.
#   --sysusers-dir DIR  also copy skywire.sysusers.conf there (e.g. /etc/sysusers.d) and, as root, create the
#                       'skywire' user with systemd-sysusers.
set -eu

prefix=/opt/skywire
runtime=
systemd_dir=
sysusers_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --runtime) runtime=$2; shift 2 ;;
        --systemd-dir) systemd_dir=$2; shift 2 ;;
        --sysusers-dir) sysusers_dir=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (--help for usage)" >&2; exit 2 ;;
    esac
done

case "$prefix" in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac

if [ -z "$runtime" ]; then
    case "$(uname -m)" in
        x86_64) runtime=linux-x64 ;;
        aarch64|arm64) runtime=linux-arm64 ;;
        *) echo "install.sh: no default runtime for $(uname -m); give --runtime" >&2; exit 2 ;;
    esac
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
echo "Publishing skywire and viscript for $runtime into $prefix (self-contained; this takes a few minutes)"
dotnet publish "$repo/src/Skywire/Skywire.csproj" -c Release -r "$runtime" --self-contained -o "$prefix/lib/skywire" -nologo -v quiet -p:ViscriptCliAot=false
dotnet publish "$repo/src/Viscript/Viscript.csproj" -c Release -r "$runtime" --self-contained -o "$prefix/lib/viscript" -nologo -v quiet -p:ViscriptCliAot=false
# viscript-cli: compiled ahead of time when clang is here (a call then starts in milliseconds), else self-contained JIT.
if command -v clang >/dev/null; then
    dotnet publish "$repo/src/Viscript.Cli/Viscript.Cli.csproj" -c Release -r "$runtime" -o "$prefix/lib/viscript-cli" -nologo -v quiet
else
    echo "install.sh: no clang: viscript-cli is installed without NativeAOT (apt-get install clang zlib1g-dev for the fast one)"
    dotnet publish "$repo/src/Viscript.Cli/Viscript.Cli.csproj" -c Release -r "$runtime" --self-contained -p:PublishAot=false -o "$prefix/lib/viscript-cli" -nologo -v quiet
fi

mkdir -p "$prefix/bin" "$prefix/share/skywire/systemd" "$prefix/share/skywire/doc"
ln -sfn ../lib/skywire/skywire "$prefix/bin/skywire"
ln -sfn ../lib/viscript/viscript "$prefix/bin/viscript"
ln -sfn ../lib/viscript-cli/viscript-cli "$prefix/bin/viscript-cli"
for unit in "$repo"/deploy/systemd/*.service; do
    sed "s|@PREFIX@|$prefix|g" "$unit" > "$prefix/share/skywire/systemd/$(basename "$unit")"
done
cp "$repo/deploy/systemd/skywire.sysusers.conf" "$prefix/share/skywire/systemd/"
cp "$repo"/docs/operations.md "$repo"/docs/messenger.md "$repo"/docs/viscript.md "$prefix/share/skywire/doc/"

if [ -n "$sysusers_dir" ]; then
    mkdir -p "$sysusers_dir"
    cp "$prefix/share/skywire/systemd/skywire.sysusers.conf" "$sysusers_dir/skywire.conf"
    if [ "$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then
        systemd-sysusers "$sysusers_dir/skywire.conf"
    fi
fi
if [ -n "$systemd_dir" ]; then
    mkdir -p "$systemd_dir"
    cp "$prefix"/share/skywire/systemd/*.service "$systemd_dir/"
    echo "Units copied to $systemd_dir. Next: systemctl daemon-reload; write /etc/skywire/*.env; systemctl enable --now skywire-manager (…)"
fi

"$prefix/bin/skywire" --version >/dev/null
echo "Installed: $prefix/bin/skywire, $prefix/bin/viscript, $prefix/bin/viscript-cli; units in $prefix/share/skywire/systemd"
