import type { NextConfig } from "next";
import { hostname, networkInterfaces } from "node:os";
import { devOrigins } from "./lib/dev-origins";

const nextConfig: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // next dev serves its scripts and HMR only to localhost and these: this
  // machine's names and addresses, as they are when it starts.
  allowedDevOrigins: devOrigins(hostname(), networkInterfaces()),
};

export default nextConfig;
