// The search index as a classic script (fetch() is refused from file://; a <script src> is not).
import { loadSite } from '../lib/load';
import { searchIndex } from '../lib/render';

export function GET(): Response {
  return new Response(searchIndex(loadSite().model), { headers: { 'content-type': 'text/javascript; charset=utf-8' } });
}
