import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export interface ReceivedMail {
  from: string;
  to: string[];
  messageId: string;
  subject: string;
  /** The whole message as received (headers and body). */
  raw: string;
  /** The body, decoded when it was sent quoted-printable. */
  text: string;
}

export interface TestSmtp {
  url: string;
  received: ReceivedMail[];
  /** Refuse the next `n` messages at DATA with a temporary failure (451). */
  failNext(n: number): void;
  /** Messages refused so far. */
  refused: number;
  close(): Promise<void>;
}

/** The body of a single-part message, quoted-printable decoded if so encoded. */
function bodyOf(raw: string): string {
  const split = raw.indexOf("\r\n\r\n");
  const body = split === -1 ? "" : raw.slice(split + 4);
  if (!/^Content-Transfer-Encoding:\s*quoted-printable/im.test(raw.slice(0, split))) return body;
  const bytes = body.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
  return Buffer.from(bytes, "latin1").toString("utf8");
}

/** A header's value, unfolded (long headers continue on lines that start with white space). */
const header = (raw: string, name: string) => {
  const head = raw.slice(0, raw.indexOf("\r\n\r\n")).replace(/\r\n[ \t]+/g, " ");
  return new RegExp(`^${name}:\\s*(.*)$`, "im").exec(head)?.[1]?.trim() ?? "";
};

/** A real SMTP server (the `smtp-server` package) on a free local port that keeps what it receives. */
export async function startTestSmtp(): Promise<TestSmtp> {
  let toFail = 0;
  const state = { received: [] as ReceivedMail[], refused: 0 };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        if (toFail > 0) {
          toFail -= 1;
          state.refused += 1;
          const err = Object.assign(new Error("Temporary local problem, try again later"), { responseCode: 451 });
          callback(err);
          return;
        }
        const raw = Buffer.concat(chunks).toString("utf8");
        state.received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          messageId: header(raw, "Message-ID"),
          subject: header(raw, "Subject"),
          raw,
          text: bodyOf(raw),
        });
        callback(null);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    get received() {
      return state.received;
    },
    get refused() {
      return state.refused;
    },
    failNext(n) {
      toFail = n;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
