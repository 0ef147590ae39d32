#!/bin/sh
# Installs the Debian 12 packages lymphdet needs to build, test and draw (as root);
# does nothing when they are all present.
set -e
PACKAGES="make gcc clang libclang-rt-14-dev pkg-config libjpeg62-turbo-dev libpng-dev \
libjansson-dev libxml2-dev libcairo2-dev"
if dpkg -s $PACKAGES >/dev/null 2>&1; then
  echo "deps: all Debian packages present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages; run as root: apt-get install $PACKAGES" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
echo "deps: installed $PACKAGES"
