// What the server pushes over /api/v1/events/stream, kept for the screens. The page polls
// nothing: EventSource reconnects by itself (also after a restart of `turnout up`) and sends
// Last-Event-ID, so the history events missed meanwhile are replayed.
import { useSyncExternalStore } from "react";
import { currentSession, signedOut } from "./api";

export type Conn = "connecting" | "live" | "down";

export interface LiveState {
  conn: Conn;
  /** The first snapshot has arrived. */
  ready: boolean;
  /** The body of GET /api/v1/services/:name/status, by service. */
  status: Record<string, any>;
  /** How many pushes each service has had: screens refetch what they derive from it. */
  seq: Record<string, number>;
  flags: any | null;
  flagsSeq: number;
  /** History events pushed since the page connected, by service ("" for flags). */
  events: Record<string, any[]>;
  verdicts: any[];
  /** The router's cumulative counters at each push, the last 30 s, by service. */
  traffic: Record<string, { at: number; traffic: any[] }[]>;
  /** The shadow report's agreement at each push since the page connected, by service. */
  agreement: Record<
    string,
    { at: number; agreement: number; samples: number; phase: string | null }[]
  >;
}

let state: LiveState = {
  conn: "connecting",
  ready: false,
  status: {},
  seq: {},
  flags: null,
  flagsSeq: 0,
  events: {},
  verdicts: [],
  traffic: {},
  agreement: {},
};
const listeners = new Set<() => void>();
let source: EventSource | null = null;
let lastEventId = "";
let retry: ReturnType<typeof setTimeout> | null = null;

function set(next: Partial<LiveState>): void {
  state = { ...state, ...next };
  for (const l of listeners) l();
}

function bump(service: string): Record<string, number> {
  return { ...state.seq, [service]: (state.seq[service] ?? 0) + 1 };
}

export function connect(): void {
  if (source) return;
  // A new EventSource cannot send Last-Event-ID itself: the query carries it.
  const es = new EventSource(
    `/api/v1/events/stream${lastEventId ? `?lastEventId=${encodeURIComponent(lastEventId)}` : ""}`,
  );
  source = es;
  es.onopen = () => set({ conn: "live" });
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED) return set({ conn: "connecting" });
    // The browser gives up on an answer that is not a stream (a 503 while the server stops,
    // a 401 once the session is gone): ask whether we are still signed in, then reconnect.
    set({ conn: "down" });
    source = null;
    if (retry) clearTimeout(retry);
    retry = setTimeout(async () => {
      retry = null;
      const s = await currentSession().catch(() => undefined);
      if (s === null) signedOut();
      else if (source === null) connect();
    }, 2000);
  };
  const on = (type: string, f: (data: any) => void) =>
    es.addEventListener(type, (e) => {
      const m = e as MessageEvent;
      if (m.lastEventId) lastEventId = m.lastEventId;
      f(JSON.parse(m.data));
    });
  on("status", (d) => {
    const at = Date.now();
    const traffic = [
      ...(state.traffic[d.service] ?? []),
      { at, traffic: d.view.traffic ?? [] },
    ].filter((x) => x.at >= at - 30_000);
    const rep = d.view.shadow?.report?.report;
    // Each point names its shadow phase: a chart of one phase must not draw another's.
    const phase: string | null = d.view.shadow?.report?.id ?? null;
    const agreement = { ...state.agreement };
    if (rep && typeof rep.agreement === "number") {
      const list = agreement[d.service] ?? [];
      const prev = list[list.length - 1];
      if (!prev || prev.samples !== rep.samples || prev.phase !== phase)
        agreement[d.service] = [
          ...list,
          { at, agreement: rep.agreement, samples: rep.samples, phase },
        ].slice(-600);
    }
    set({
      status: { ...state.status, [d.service]: d.view },
      seq: bump(d.service),
      traffic: { ...state.traffic, [d.service]: traffic },
      agreement,
    });
  });
  on("routeTable", (d) => {
    const cur = state.status[d.service];
    if (cur)
      set({ status: { ...state.status, [d.service]: { ...cur, routeTable: d.routeTable } } });
  });
  on("removed", (d) => {
    const { [d.service]: _gone, ...rest } = state.status;
    set({ status: rest, seq: bump(d.service) });
  });
  on("flags", (d) => set({ flags: d, flagsSeq: state.flagsSeq + 1 }));
  on("event", (e) => {
    const list = state.events[e.service] ?? [];
    set({ events: { ...state.events, [e.service]: [...list, e].slice(-500) } });
  });
  on("verdict", (v) => set({ verdicts: [...state.verdicts, v].slice(-200) }));
  on("ready", (d: { services: string[] }) => {
    // Services deleted while the page was away.
    const status: Record<string, any> = {};
    for (const s of d.services) if (state.status[s]) status[s] = state.status[s];
    set({ ready: true, conn: "live", status });
  });
}

export function disconnect(): void {
  source?.close();
  source = null;
  lastEventId = "";
  if (retry) clearTimeout(retry);
  retry = null;
  set({
    conn: "connecting",
    ready: false,
    status: {},
    events: {},
    verdicts: [],
    flags: null,
    traffic: {},
    agreement: {},
  });
}

export function useLive(): LiveState {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => state,
  );
}
