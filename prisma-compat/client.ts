// A Prisma 7 client of the chat's database, as another tool of a team that
// keeps Prisma next to the Go server would be (an admin script, a Next.js
// route reading history): generator `prisma-client`, driver adapter
// `@prisma/adapter-pg`, no query engine binary.
//
//   npx tsx client.ts write <username> <message> [userId]   store one message, print it as JSON
//   npx tsx client.ts list [limit]                 print the newest messages as JSON, newest first
//   npx tsx client.ts deletions                    print the tombstones of deleted messages as JSON
//   npx tsx client.ts bans                         print the bans as JSON
//   npx tsx client.ts write-in-room <roomId> <username> <message>   store one message of a room
//   npx tsx client.ts rooms                        print the rooms with their members as JSON
//   npx tsx client.ts users                        print the users as JSON
//
// DATABASE_URL is the same URL the Go server reads; a Prisma-style
// `?schema=NAME` selects the schema (default public).
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/prisma/client.ts";

function connect(): PrismaClient {
  const raw = process.env.DATABASE_URL;
  if (!raw) throw new Error("DATABASE_URL is not set");
  const url = new URL(raw);
  const schema = url.searchParams.get("schema") ?? undefined;
  url.searchParams.delete("schema"); // Prisma's own parameter, unknown to node-postgres
  const adapter = new PrismaPg({ connectionString: url.toString() }, { schema });
  return new PrismaClient({ adapter });
}

async function main(args: string[]): Promise<void> {
  const prisma = connect();
  try {
    switch (args[0]) {
      case "write": {
        if (args.length !== 3 && args.length !== 4) throw new Error("usage: client.ts write <username> <message> [userId]");
        // id (a UUID v4) and createdAt come from the schema's defaults, as in the original server.
        const m = await prisma.message.create({ data: { username: args[1], content: args[2], userId: args[3] ?? null } });
        console.log(JSON.stringify(m));
        break;
      }
      case "list": {
        const take = Number(args[1] ?? 50);
        if (!Number.isInteger(take) || take < 1) throw new Error(`list: bad limit ${args[1]}`);
        const rows = await prisma.message.findMany({
          orderBy: [{ createdAt: "desc" }, { id: "desc" }],
          take,
        });
        console.log(JSON.stringify(rows));
        break;
      }
      case "deletions":
        console.log(JSON.stringify(await prisma.messageDeletion.findMany({ orderBy: { deletedAt: "asc" } })));
        break;
      case "bans":
        console.log(JSON.stringify(await prisma.ban.findMany({ orderBy: { createdAt: "asc" } })));
        break;
      case "write-in-room": {
        if (args.length !== 4) throw new Error("usage: client.ts write-in-room <roomId> <username> <message>");
        const m = await prisma.message.create({ data: { roomId: args[1], username: args[2], content: args[3] } });
        console.log(JSON.stringify(m));
        break;
      }
      case "rooms":
        console.log(
          JSON.stringify(
            await prisma.room.findMany({
              orderBy: [{ createdAt: "asc" }, { id: "asc" }],
              include: { members: { orderBy: [{ joinedAt: "asc" }, { userId: "asc" }] } },
            }),
          ),
        );
        break;
      case "users":
        console.log(JSON.stringify(await prisma.user.findMany({ orderBy: { id: "asc" } })));
        break;
      default:
        throw new Error(
          "usage: client.ts write <username> <message> [userId] | list [limit] | deletions | bans | write-in-room <roomId> <username> <message> | rooms | users",
        );
    }
  } finally {
    await prisma.$disconnect();
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
