// Prisma 7 configuration: where the schema and the migrations are, and the
// database URL (DATABASE_URL, the same variable the Go server reads).
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "schema.prisma",
  migrations: { path: "migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "" },
});
