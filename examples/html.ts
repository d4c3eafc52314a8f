/**
 * What the drills' HTML reports share: escaping and the page's base style (self-contained pages: inline SVG,
 * no scripts, no network).
 */

/** Escapes text for HTML. */
export const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** The CSS both reports start with: page, figures and the legend's swatches. */
export const baseStyle = `body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #222; }
figure { margin: 16px 0 28px; } figcaption { font-weight: 600; margin-bottom: 4px; }
.legend span { display: inline-block; margin-right: 16px; } .sw { display: inline-block; width: 14px; height: 4px; vertical-align: middle; margin-right: 4px; }`
