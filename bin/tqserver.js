#!/usr/bin/env node
// The `tqserver` command: runs the compiled CLI (npm install builds it).
import '../dist/src/cli.js';
