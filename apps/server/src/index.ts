// @pisces/server: the Pisces demo server (OpenAI-compatible endpoints, a web page).
export { createServer, type PiscesServer, type ServerOptions, toPiscesMessages } from "./server.js";
