export * as FakeProvider from "./FakeProvider.ts"
export * as ChaosServer from "./ChaosServer.ts"
