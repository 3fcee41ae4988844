import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
  server: { proxy: { "/v1": "http://127.0.0.1:3000", "/healthz": "http://127.0.0.1:3000", "/docs": "http://127.0.0.1:3000" } },
});
