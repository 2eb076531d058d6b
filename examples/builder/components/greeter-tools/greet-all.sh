#!/bin/sh
# greet-all: runs hello and counter, installed next to this script.
set -e
here=$(dirname "$0")
"$here/hello"
"$here/counter"
