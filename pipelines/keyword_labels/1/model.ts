/**
 * keyword_labels: a rule-based labeller, cheap enough to answer short texts
 * without the classifier. The rules are the config's parameters, one per
 * label in order (billing, technical, account), each a
 * comma-separated list of word beginnings, read once in initialize(). A
 * word counts for the first label with a keyword it starts with; a text
 * with no such word is "other".
 */
import type { InferRequest, InferResponse, ModelContext, ModelScript, Tensor } from '../../../scripts-runtime/author-api.js';

type Inputs = { readonly TEXT: Tensor<'BYTES'> };

const LABELS = ['billing', 'technical', 'account'] as const;
const FALLBACK = 'other';
const WORD = /[\p{L}\p{N}]+/gu;

interface Rule { readonly label: string; readonly keywords: readonly string[] }

export default class KeywordLabels implements ModelScript<Inputs> {
  private rules: readonly Rule[] = [];

  initialize(ctx: ModelContext): void {
    this.rules = LABELS.map((label) => {
      const value = ctx.config.parameters?.[label]?.string_value;
      if (value === undefined) throw new Error(`parameters "${label}" is missing: give the beginnings of its keywords, comma-separated`);
      return { label, keywords: value.split(',').map((k) => k.trim().toLowerCase()).filter((k) => k !== '') };
    });
  }

  execute(requests: readonly InferRequest<Inputs>[]): InferResponse[] {
    return requests.map(({ inputs: { TEXT } }) => {
      const rows = TEXT.data.length;
      const label: string[] = [];
      const score = new Float32Array(rows);
      const keywords: string[] = [];
      TEXT.data.forEach((text, row) => {
        const hits = this.rules.map(() => [] as string[]);
        for (const word of text.toLowerCase().match(WORD) ?? []) {
          const rule = this.rules.findIndex((r) => r.keywords.some((k) => word.startsWith(k)));
          if (rule >= 0) hits[rule]!.push(word);
        }
        const total = hits.reduce((n, h) => n + h.length, 0);
        let best = 0;
        for (let r = 1; r < hits.length; r++) if (hits[r]!.length > hits[best]!.length) best = r;
        label.push(total === 0 ? FALLBACK : this.rules[best]!.label);
        score[row] = total === 0 ? 0 : hits[best]!.length / total;
        keywords.push(hits.flat().join(' '));
      });
      return {
        outputs: {
          LABEL: { shape: [rows, 1], data: label },
          SCORE: { shape: [rows, 1], data: score },
          KEYWORDS: { shape: [rows, 1], data: keywords },
        },
      };
    });
  }
}
