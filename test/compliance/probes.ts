// Path segments that try to leave a repository or confuse a decoder. Each replaces the `{}` of a
// fixture's traversal target; every one must get a 4xx. Literal backslashes are sent as is.
export const TRAVERSAL_PROBES: string[] = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E',
  '.%2e',
  '..%2f..%2fsecret.txt',
  '%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt',
  '..%2f..%2fvault%2fsecret.txt',
  '../../vault/secret.txt',
  '..%5c..%5csecret.txt',
  '..\\..\\secret.txt',
  'a%5cb',
  'a\\b',
  '%2fetc%2fpasswd',
  'a%2fb',
  '%00',
  'a%00b',
  'secret.txt%00.tgz',
  '%ff%fe',
  '%c0%ae%c0%ae', // overlong UTF-8 for ".."
  '%e0%80%ae',
  '%zz',
  'a%',
  'x'.repeat(4096)
]

/** Names beyond ASCII, percent-encoded UTF-8 as clients send them: a format may accept or refuse
 *  each (2xx or 4xx), never answer 500. */
export const UNICODE_PROBES: string[] = [
  '%E4%B8%AD%E6%96%87.txt', // 中文
  '%D0%BA%D0%B8%D1%80%D0%B8%D0%BB%D0%BB%D0%B8%D1%86%D0%B0.txt', // кириллица
  '%F0%9F%93%A6.txt', // 📦
  '%E2%80%AEtxt.exe', // RTL override
  'caf%C3%A9.txt' // café (Latin-1 range)
]
