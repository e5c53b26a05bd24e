// The dashboard's build: `vite build --config web/vite.config.ts` writes dist/web/, which
// `turnout up` serves at `/` (src/api/dashboard/static.ts). No CDN, no runtime fetches.
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL("../dist/web", import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    assetsInlineLimit: 0,
  },
  logLevel: "warn",
});
