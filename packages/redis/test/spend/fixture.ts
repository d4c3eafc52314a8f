/** The spend acceptance test's call: its price, its usage, its request in the shared conversation. */
export const prices = { m: { inputPerMillion: 1_000, outputPerMillion: 1_000 } }
export const usage = { inputTokens: 10, outputTokens: 200 }
export const request = {
  model: "m",
  messages: [{ role: "user" as const, content: "hi" }],
  maxOutputTokens: 200,
  metadata: { conversationId: "shared-conversation" }
}
