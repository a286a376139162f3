// The origins `next dev` serves its own resources to (allowedDevOrigins).
// Next's dev server refuses its scripts and its HMR WebSocket to a page
// whose origin it was not told about, so a page opened at 127.0.0.1, at the
// machine's name or at a LAN address stays on "Loading…". The list is this
// machine's names and addresses, found when next dev starts, and nothing
// else: any other site still cannot read the dev server's resources.

/** An address of a network interface, as node's os.networkInterfaces() gives it. */
export interface InterfaceAddress {
  address: string;
  family: string | number;
}

/**
 * devOrigins returns the host names under which this machine's own pages
 * may use next dev's resources: its host name (and that name on mDNS,
 * `<name>.local`), and every address of its interfaces, IPv6 ones in
 * brackets as a URL writes them. Link-local IPv6 addresses are left out:
 * a browser's URL cannot name their zone. localhost Next allows already.
 */
export function devOrigins(hostname: string, interfaces: Record<string, InterfaceAddress[] | undefined>): string[] {
  const out = new Set<string>();
  const name = hostname.trim().toLowerCase();
  if (name && name !== "localhost") {
    out.add(name);
    if (!name.includes(".")) out.add(`${name}.local`);
  }
  for (const addrs of Object.values(interfaces)) {
    for (const a of addrs ?? []) {
      const ipv6 = a.family === "IPv6" || a.family === 6;
      const address = a.address.toLowerCase();
      if (!ipv6) out.add(address);
      else if (!address.startsWith("fe80:")) out.add(`[${address.split("%")[0]}]`);
    }
  }
  return [...out];
}
