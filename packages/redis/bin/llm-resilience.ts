#!/usr/bin/env -S node --max-semi-space-size=16 --v8-pool-size=1
/**
 * `llm-resilience dlq list|show|replay|purge`: the dead-letter queue of a durable queue kept in Redis.
 * `llm-resilience gateway --config <file>`: the gateway (`@llm-resilience/gateway`, when installed).
 * `--help` lists the options.
 *
 * `llm-resilience gateway` runs the program `llm-resilience-gateway` runs (one bundled file, loaded before
 * anything else here), in this process, with the same Node flags: the two `#!` lines are the same (16 MB
 * semi-spaces: a busy gateway's lower resident memory, see docs/architecture.md); they change nothing
 * measurable for the short `dlq` commands. A flag cannot be given to the running Node later (V8 sizes its heap
 * at startup), hence the `#!` line rather than a switch in the `gateway` branch.
 */

/** The gateway's command line, as a module: importing it runs it with this process's arguments. */
const gatewayProgram = "@llm-resilience/gateway/bin/llm-resilience-gateway"

/** `llm-resilience gateway ...` is the gateway's command line, when `@llm-resilience/gateway` is installed. */
const gateway = async (): Promise<void> => {
  try {
    // the program reads process.argv; its command line accepts the leading `gateway`
    await import(gatewayProgram)
  } catch (error) {
    const { code, message } = error as { readonly code?: unknown; readonly message?: unknown }
    if (code !== "ERR_MODULE_NOT_FOUND" || !String(message).includes("'@llm-resilience/gateway'")) throw error
    console.error("llm-resilience gateway needs @llm-resilience/gateway: npm install @llm-resilience/gateway")
    process.exitCode = 2
  }
}

if (process.argv[2] === "gateway") await gateway()
else await import("./dlq.ts")
