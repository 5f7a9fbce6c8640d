// Contrast of what the page shows, computed in the page (WCAG 2.1 formulas).
// Loaded by test_look.py; defines window.contrastReport(checks) which, for each
// [selector, kind] pair (kind "text" or "ui"), measures every visible match.
(() => {
  function parse(colour) {
    const m = colour.match(/rgba?\(([^)]+)\)/);
    if (!m) throw new Error(`cannot read colour ${colour}`);
    const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [r, g, b, a];
  }
  function over(top, bottom) {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat(1);
  }
  function luminance([r, g, b]) {
    const lin = (c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  }
  function ratio(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }
  // The colour behind an element: its own and its ancestors' backgrounds, composited.
  function backdrop(el) {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] === 1) break;
    }
    let colour = [255, 255, 255, 1];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
  }
  function isLarge(style) {
    const size = parseFloat(style.fontSize);
    return size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  }
  function visible(el) {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden";
  }
  function describe(el) {
    return `${el.tagName.toLowerCase()}.${[...el.classList].join(".")} "${el.textContent.trim().slice(0, 24)}"`;
  }
  window.contrastReport = (checks) => {
    const out = [];
    for (const [selector, kind] of checks) {
      for (const el of document.querySelectorAll(selector)) {
        if (!visible(el)) continue;
        const style = getComputedStyle(el);
        if (kind === "text") {
          const fg = over(parse(style.color), backdrop(el));
          const needed = isLarge(style) ? 3 : 4.5;
          out.push({ selector, what: describe(el), ratio: ratio(fg, backdrop(el)), needed });
        } else if (kind === "placeholder") {
          const fg = over(parse(getComputedStyle(el, "::placeholder").color), backdrop(el));
          out.push({ selector, what: `${describe(el)} placeholder`, ratio: ratio(fg, backdrop(el)), needed: 4.5 });
        } else {
          // A control's boundary against what surrounds it: its border if it has
          // one, else its own background.
          const around = backdrop(el.parentElement);
          const edge = parseFloat(style.borderTopWidth) > 0
            ? over(parse(style.borderTopColor), around)
            : backdrop(el);
          out.push({ selector, what: `${describe(el)} boundary`, ratio: ratio(edge, around), needed: 3 });
        }
      }
    }
    return out;
  };
})();
