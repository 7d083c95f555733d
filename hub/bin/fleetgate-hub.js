#!/usr/bin/env node
// A committed entry point, so npm can link the bin before `tsc -b` (the root prepare) builds dist/.
import '../dist/cli.js'
