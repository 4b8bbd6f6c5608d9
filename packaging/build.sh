#!/usr/bin/env bash
# Builds, from one release build, this platform's Python wheel (maturin,
# "bin" bindings plus the pytest plugin) and npm package into dist/:
#   dist/bulkexport-<version>-py3-none-<platform>.whl
#   dist/bulkexport-<version>.tgz
# Needs a Rust toolchain, Python 3 (maturin comes from PyPI into a build
# virtualenv under target/) and Node.js with npm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
mkdir -p dist

echo "== release build"
cargo build --release --locked --bin bulkexport

echo "== wheel"
python3 -m venv target/packaging-venv
target/packaging-venv/bin/pip install --quiet --disable-pip-version-check "maturin==1.16.0"
# The same profile and flags as the build above: cargo has nothing to redo.
target/packaging-venv/bin/maturin build --release --locked --out dist

echo "== npm package"
stage=target/npm-package
rm -rf "$stage"
mkdir -p "$stage/bin"
cp packaging/npm/package.json packaging/npm/index.js "$stage/"
cp packaging/npm/bin/bulkexport.js "$stage/bin/"
platform=$(node -p process.platform)
arch=$(node -p process.arch)
binary="bulkexport-$platform-$arch"
cp target/release/bulkexport "$stage/bin/$binary"
printf '{"platform": "%s", "arch": "%s", "binary": "%s"}\n' "$platform" "$arch" "$binary" >"$stage/bin/platform.json"
(cd "$stage" && npm pkg set version="$version" && npm pack --silent --pack-destination "$root/dist" >/dev/null)
ls -l dist/bulkexport-"$version"*
