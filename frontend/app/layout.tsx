import type { Metadata, Viewport } from "next";
import type { ReactNode } from "react";
import { ChatProvider } from "@/components/ChatProvider";
import "./globals.css";

export const metadata: Metadata = {
  title: "Chat",
  description: "Chat: the global room, rooms of your own and direct messages",
};

export const viewport: Viewport = {
  width: "device-width",
  initialScale: 1,
  themeColor: [
    { media: "(prefers-color-scheme: light)", color: "#f6f7f9" },
    { media: "(prefers-color-scheme: dark)", color: "#15171a" },
  ],
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <ChatProvider>{children}</ChatProvider>
      </body>
    </html>
  );
}
