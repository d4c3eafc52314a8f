#!/usr/bin/env node
/**
 * `llm-resilience-gateway --config gateway.yaml` (also `llm-resilience gateway ...`): starts the gateway.
 * `--help` lists the options.
 */
import { GatewayCli } from "../src/index.ts"

GatewayCli.main(process.argv.slice(2))
