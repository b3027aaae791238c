/**
 * What the signed git history says about the records folder (agent/trust.ts reads it with
 * git): the trusted policy and its changes, the requests, the approvals that count and those
 * that do not, the checkpoints. Plain data, so that the site can show it from a JSON file
 * without running git itself.
 */
import type { PolicyText } from './chain.js';
import type { Approval, Checkpoint, FileProblem, Request } from './request.js';

export interface PolicyChange {
  commit: string;
  author: string;
  date: string;
  /** The signing key's fingerprint and principal, when git could check it. */
  key: string | undefined;
  principal: string | undefined;
  status: 'anchor' | 'accepted' | 'ignored' | 'before-anchor';
  reason: string | undefined;
}

export interface TrustedPolicy extends PolicyText {
  /** The commit whose signed policy everything else hangs from; undefined when no approver ever signed it. */
  anchor: { commit: string; key: string; principal: string } | undefined;
  /** The commit whose policy is in force. */
  commit: string | undefined;
  changes: PolicyChange[];
  /** Changes that were ignored, each one line: commit, who, why. */
  ignored: string[];
  problems: string[];
}

export interface SignedFileState {
  path: string;
  valid: boolean;
  /** Why it does not count. */
  reason: string | undefined;
  /** The newest commit that touched it, and the key and principal that signed it. */
  commit: string | undefined;
  key: string | undefined;
  principal: string | undefined;
  date: string | undefined;
}

export interface ApprovalState extends SignedFileState {
  id: string;
  approval: Approval | undefined;
}

export interface CheckpointState extends SignedFileState {
  checkpoint: Checkpoint | undefined;
  /** False for one deleted by a commit that does not count (an approver's signed deletion retires it quietly). */
  present: boolean;
}

export interface RequestState {
  id: string;
  path: string;
  request: Request | undefined;
  digest: string;
  problems: FileProblem[];
}

export interface Trust {
  /** False when the folder is not in a git checkout: only the records themselves can be checked. */
  git: boolean;
  policy: TrustedPolicy;
  requests: RequestState[];
  approvals: ApprovalState[];
  checkpoints: CheckpointState[];
}
