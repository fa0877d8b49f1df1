// Messages between the server (main thread) and the model's worker thread.
import type { PiscesMessage } from "@pisces/model";

export type Job =
  | {
      type: "chat";
      id: number;
      messages: PiscesMessage[];
      images: Uint8Array[];
      maxNewTokens: number;
      temperature?: number;
      topP?: number;
      seed?: number;
    }
  | {
      type: "image";
      id: number;
      prompt: string;
      n: number;
      seed?: number;
      steps: number;
      guidanceScale: number;
      width?: number;
      height?: number;
      previewEvery: number;
    };

export type ToWorker = Job | { type: "cancel"; id: number };

export type FromWorker =
  | { type: "ready"; model: string }
  | { type: "fatal"; message: string }
  /** After each job: the worker's live native tensors (flat across requests when nothing leaks). */
  | { type: "stats"; liveTensors: number; liveBytes: number }
  | { type: "text"; id: number; delta: string }
  | { type: "progress"; id: number; stage: "vectors" | "denoise"; step: number; of: number; previews?: Uint8Array[] }
  | { type: "done"; id: number; text?: string; tokens?: number; images?: Uint8Array[] }
  | { type: "error"; id: number; message: string; status: number };
