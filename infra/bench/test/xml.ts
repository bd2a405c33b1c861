// A minimal XML reader: enough to prove the chart is well-formed (one root, balanced tags, quoted attributes,
// escaped text) and to read it back as a tree.

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: (XmlElement | string)[];
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(text: string, where: number): string {
  let out = '';
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i]!;
    if (char === '<') throw new Error(`raw "<" in text at ${where + i}`);
    if (char !== '&') {
      out += char;
      continue;
    }
    const end = text.indexOf(';', i);
    const entity = end < 0 ? undefined : ENTITIES[text.slice(i + 1, end)];
    if (entity === undefined) throw new Error(`a bare "&" or unknown entity at ${where + i}: ${text.slice(i, i + 10)}`);
    out += entity;
    i = end;
  }
  return out;
}

const isNameChar = (char: string) => /[\w:.-]/.test(char);

export function parseXml(source: string): XmlElement {
  let at = 0;
  const fail = (why: string): never => {
    throw new Error(`${why} at ${at}: ${JSON.stringify(source.slice(at, at + 40))}`);
  };
  const skipSpace = () => {
    while (at < source.length && ' \t\r\n'.includes(source[at]!)) at += 1;
  };
  const readName = () => {
    const start = at;
    while (at < source.length && isNameChar(source[at]!)) at += 1;
    if (at === start) fail('expected a name');
    return source.slice(start, at);
  };
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  skipSpace();
  while (at < source.length) {
    if (source[at] !== '<') {
      const end = source.indexOf('<', at);
      const text = source.slice(at, end < 0 ? source.length : end);
      if (stack.length === 0) {
        if (text.trim() !== '') fail('text outside the root element');
      } else {
        stack.at(-1)!.children.push(decode(text, at));
      }
      at = end < 0 ? source.length : end;
      continue;
    }
    at += 1;
    if (source[at] === '/') {
      at += 1;
      const name = readName();
      skipSpace();
      if (source[at] !== '>') fail('expected ">"');
      at += 1;
      const open = stack.pop();
      if (!open || open.name !== name) fail(`</${name}> closes <${open?.name ?? 'nothing'}>`);
      continue;
    }
    if (root && stack.length === 0) fail('a second root element');
    const element: XmlElement = { name: readName(), attributes: {}, children: [] };
    for (;;) {
      skipSpace();
      if (source.startsWith('/>', at)) {
        at += 2;
        stack.at(-1)?.children.push(element);
        root ??= element;
        break;
      }
      if (source[at] === '>') {
        at += 1;
        stack.at(-1)?.children.push(element);
        root ??= element;
        stack.push(element);
        break;
      }
      const attribute = readName();
      if (attribute in element.attributes) fail(`duplicate attribute ${attribute}`);
      skipSpace();
      if (source[at] !== '=') fail('expected "="');
      at += 1;
      skipSpace();
      const quote = source[at];
      if (quote !== '"' && quote !== "'") fail('expected a quoted value');
      const end = source.indexOf(quote!, at + 1);
      if (end < 0) fail('unterminated attribute');
      element.attributes[attribute] = decode(source.slice(at + 1, end), at + 1);
      at = end + 1;
    }
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.map((element) => element.name).join('>, <')}>`);
  if (!root) throw new Error('no root element');
  return root;
}

export const textOf = (element: XmlElement): string => element.children.map((child) => (typeof child === 'string' ? child : textOf(child))).join('');
