/** `incident`: damage to a service and its recovery, ending with the written evaluation the emergency plan asks for. */
import { z } from 'zod';
import { isoTime, repositoryName } from '../common.js';
import { recordRef } from './shared.js';

export const incidentRecord = z
  .object({
    title: z.string().min(1),
    occurred: isoTime,
    detected: isoTime,
    resolved: isoTime.nullable(),
    affected: z.array(repositoryName),
    cause: z.string().min(1),
    actions: z.array(z.string().min(1)),
    /** The written evaluation: what happened, what worked, what changes. */
    evaluation: z.string().min(1),
    related: z.array(recordRef),
  })
  .strict();
