/**
 * The gateway benchmark's reference: the least an HTTP proxy in Node does per request, run beside the gateway
 * in the same phases, so that what the machine allows shows next to what the gateway adds. Node's HTTP server,
 * undici's client (the one the gateway uses) on one keep-alive agent, the request's JSON parsed and its model
 * renamed, the answer's JSON parsed, renamed back and written: the gateway's wire work without any policy,
 * Effect or error handling (a failed upstream call answers 502).
 *
 * Run bundled by `run.ts` with `UPSTREAM=<chaos server URL>`; prints `listening on <url>`.
 */
import * as Undici from "@effect/platform-node/Undici"
import * as http from "node:http"

const upstream = `${process.env.UPSTREAM}/v1/chat/completions`
const agent = new Undici.Agent({ keepAliveTimeout: 4_000 })

const forward = async (body: Buffer): Promise<{ readonly status: number; readonly json: string }> => {
  const request = JSON.parse(body.toString("utf8"))
  request.model = "bench-model"
  const response = await Undici.request(upstream, {
    method: "POST",
    dispatcher: agent,
    headers: { "content-type": "application/json", authorization: "Bearer sk-reference" },
    body: JSON.stringify(request)
  })
  const answer = (await response.body.json()) as { model?: string }
  answer.model = "bench"
  return { status: response.statusCode, json: JSON.stringify(answer) }
}

const server = http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    forward(Buffer.concat(chunks)).then(
      ({ status, json }) => {
        res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(json) })
        res.end(json)
      },
      () => {
        res.writeHead(502)
        res.end()
      }
    )
  })
})
server.listen(0, "127.0.0.1", () => {
  const address = server.address() as { readonly port: number }
  console.log(`listening on http://127.0.0.1:${address.port}`)
})
