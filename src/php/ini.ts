// Values written into PHP's INI syntax (php-cgi -d arguments, php-fpm pool files). php-cgi pastes
// -d values into INI text it parses like php.ini, so a newline would inject another directive, `;`
// or `=` would cut or break the value, and one syntax error drops every -d setting after it
// (cgi.fix_pathinfo=0 included). Plain values and constant expressions go as they are (evaluated as
// php.ini would: `E_ALL & ~E_NOTICE` becomes a number, `on` becomes "1"), anything else is quoted
// ('raw' when possible, else "escaped"), and what cannot be carried is refused.

import { ConfigValueError } from '../errors.js';

/** Characters php-cgi takes literally in an unquoted -d value. */
const PLAIN_VALUE = /^[A-Za-z0-9_.\-+/:,@%]*$/;
/** Only what an INI constant expression such as `E_ALL & ~E_DEPRECATED` is made of. */
const INI_EXPRESSION_CHARS = /^[A-Z0-9_\s&|~^!()]+$/;
const INI_OPERATOR = /[&|~^!()]/;
const INI_NAME = /^[A-Za-z0-9_.\-]+$/;

/**
 * True when `text` is a well-formed INI constant expression: constants and integers joined by
 * | & ^, with ~ and ! and parentheses (the expression grammar of Zend/zend_ini_parser.y).
 */
export function isIniExpression(text: string): boolean {
  const tokens: string[] = [];
  const token = /\s*(?:([A-Z_][A-Z0-9_]*|[0-9]+)|([&|^~!()]))/y;
  while (token.lastIndex < text.length) {
    const start = token.lastIndex;
    const match = token.exec(text);
    if (!match) return /^\s*$/.test(text.slice(start));
    tokens.push(match[1] !== undefined ? 'operand' : match[2]!);
  }
  let i = 0;
  const unary = (): boolean => {
    while (tokens[i] === '~' || tokens[i] === '!') i += 1;
    if (tokens[i] === 'operand') {
      i += 1;
      return true;
    }
    if (tokens[i] !== '(') return false;
    i += 1;
    if (!expression() || tokens[i] !== ')') return false;
    i += 1;
    return true;
  };
  const expression = (): boolean => {
    if (!unary()) return false;
    while (tokens[i] === '|' || tokens[i] === '&' || tokens[i] === '^') {
      i += 1;
      if (!unary()) return false;
    }
    return true;
  };
  return expression() && i === tokens.length;
}

export function checkIniName(name: string): void {
  if (!INI_NAME.test(name)) throw new ConfigValueError(`ini setting name ${JSON.stringify(name)} has characters an ini name cannot have`);
}

/** The value as INI text; throws ConfigValueError for a value that cannot be carried unchanged. */
export function formatIniValue(name: string, value: string | number | boolean): string {
  const text = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
  if (/[\r\n\0]/.test(text)) {
    throw new ConfigValueError(`ini setting ${name}: value contains a line break or NUL, which would inject other settings`);
  }
  if (PLAIN_VALUE.test(text)) return text;
  if (INI_EXPRESSION_CHARS.test(text) && INI_OPERATOR.test(text) && /[A-Z_]{2,}/.test(text)) {
    if (!isIniExpression(text) || text !== text.trim()) {
      throw new ConfigValueError(`ini setting ${name}: ${JSON.stringify(text)} looks like a constant expression but is not a well-formed one`);
    }
    // sapi/cgi/cgi_main.c wraps a -d value that starts with anything but a letter, a digit or a
    // quote in double quotes, which would make `~E_NOTICE` the string "~E_NOTICE" (error_reporting
    // 0); `0|` keeps the value and makes it start with a digit (harmless in a php-fpm pool file).
    return /^[A-Za-z0-9]/.test(text) ? text : `0|${text}`;
  }
  // Inside '...' the INI scanner takes every character but ' literally; inside "..." it reads
  // \\, \" and \$ as escapes and expands ${...}, so those three are escaped.
  if (!text.includes("'")) return `'${text}'`;
  return `"${text.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
}
