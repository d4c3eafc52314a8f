import { assert, describe, it } from "@effect/vitest"
import type * as Undici from "@effect/platform-node/Undici"
import { releaseControllers } from "../src/internal/upstream.ts"

type Controller = Undici.Dispatcher.DispatchController
type Handler = Undici.Dispatcher.DispatchHandler

/** undici's side of a request: a controller that records what was asked of it. */
class UndiciController implements Controller {
  readonly asked: Array<string> = []
  aborted = false
  paused = false
  reason: Error | null = null
  rawHeaders: Array<string> | null = null
  rawTrailers: Array<string> | null = null
  abort(reason: Error): void {
    this.asked.push("abort")
    this.aborted = true
    this.reason = reason
  }
  pause(): void {
    this.asked.push("pause")
    this.paused = true
  }
  resume(): void {
    this.asked.push("resume")
    this.paused = false
  }
}

/** A request through `releaseControllers` that `drive` plays undici's part of; what the handler was given. */
const request = (drive: (handler: Handler, undici: UndiciController, given: ReadonlyArray<Controller>) => void) => {
  const undici = new UndiciController()
  const given: Array<Controller> = []
  const events: Array<string> = []
  const handler: Handler = {
    onRequestStart: (controller) => void given.push(controller),
    onResponseStart: (controller, status) => {
      given.push(controller)
      events.push(`start ${status} ${String(controller.rawHeaders)}`)
    },
    onResponseData: (controller, chunk) => {
      given.push(controller)
      events.push(`data ${chunk.toString()}`)
    },
    onResponseEnd: (controller) => {
      given.push(controller)
      events.push("end")
    },
    onResponseError: (controller, error) => {
      given.push(controller)
      events.push(`error ${error.message}`)
    }
  }
  const dispatch = releaseControllers((_options, h) => {
    drive(h, undici, given)
    return true
  })
  dispatch({ origin: "http://upstream", path: "/", method: "POST" }, handler)
  return { undici, given, events, controller: given[0] }
}

const respond = (handler: Handler, undici: UndiciController) => {
  handler.onRequestStart?.(undici, null)
  undici.rawHeaders = ["content-type", "application/json"]
  handler.onResponseStart?.(undici, 200, {}, "OK")
  handler.onResponseData?.(undici, Buffer.from("{}"))
}

describe("the upstream dispatcher's controllers", () => {
  it("stand for undici's while the response runs, one controller for the whole request", () => {
    const { controller, events, given, undici } = request((handler, undici) => {
      respond(handler, undici)
      handler.onResponseEnd?.(undici, {})
    })
    assert.deepStrictEqual(events, ["start 200 content-type,application/json", "data {}", "end"])
    assert.notStrictEqual(controller, undici)
    assert.strictEqual(given.length, 4)
    assert.isTrue(given.every((c) => c === controller))
  })

  it("pause, resume, abort and the raw headers reach undici's controller before the end", () => {
    const { undici } = request((handler, undici, given) => {
      respond(handler, undici)
      const c = given[0]
      c.pause()
      assert.isTrue(c.paused)
      c.resume()
      assert.isFalse(c.paused)
      assert.deepStrictEqual(c.rawHeaders, ["content-type", "application/json"])
      c.abort(new Error("stop"))
      assert.isTrue(c.aborted)
      assert.strictEqual(c.reason?.message, "stop")
    })
    assert.deepStrictEqual(undici.asked, ["pause", "resume", "abort"])
  })

  for (const [name, finish] of [
    ["ended", (handler: Handler, undici: UndiciController) => handler.onResponseEnd?.(undici, {})],
    ["failed", (handler: Handler, undici: UndiciController) => handler.onResponseError?.(undici, new Error("reset"))]
  ] as const) {
    it(`let go of undici's once the response ${name}: the last answers stay, nothing reaches it`, () => {
      const { controller, events, undici } = request((handler, undici) => {
        respond(handler, undici)
        undici.pause()
        finish(handler, undici)
      })
      assert.strictEqual(events.at(-1), name === "ended" ? "end" : "error reset")
      controller.resume()
      controller.abort(new Error("late"))
      controller.pause()
      assert.deepStrictEqual(undici.asked, ["pause"])
      assert.isTrue(controller.paused)
      assert.isFalse(controller.aborted)
      assert.isNull(controller.reason)
      assert.isNull(controller.rawHeaders)
    })
  }
})
