#!/usr/bin/env -S node --max-semi-space-size=16 --v8-pool-size=1
/**
 * `llm-resilience-gateway --config gateway.yaml` (also `llm-resilience gateway ...`): starts the gateway.
 * `--help` lists the options.
 *
 * Published as one bundled program (`scripts/bundle-bin.ts`, at pack time), which starts faster and smaller
 * than the modules loaded one by one (docs/architecture.md). Node runs with a young generation of at most
 * 16 MB per semi-space (V8 grows it to 64 MB under load): it keeps the resident memory of a busy gateway lower
 * at no measured cost in CPU.
 */
import { GatewayCli } from "../src/index.ts"

GatewayCli.main(process.argv.slice(2))
