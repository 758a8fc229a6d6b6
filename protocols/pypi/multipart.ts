// Reads the multipart/form-data body of a legacy upload: small metadata fields into memory, the
// "content" file part streamed to a consumer as it arrives (never buffered).
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import busboy from 'busboy'
import { requestBody } from '../http/request-body.ts'
import type { Context } from 'koa'
import { badRequest, RegistryError, tooLarge } from '../../store/errors.ts'

// A description (the README) is the only large field; PyPI rejects far smaller ones.
const MAX_FIELD_BYTES = 8 * 1024 * 1024
const MAX_FORM_BYTES = 16 * 1024 * 1024
const MAX_FIELDS = 1000

export class UploadFields {
  readonly #values = new Map<string, string[]>()

  add (name: string, value: string): void {
    this.#values.set(name, [...(this.#values.get(name) ?? []), value])
  }

  /** The field's value, trimmed; undefined if absent or empty. */
  get (name: string): string | undefined {
    const v = this.#values.get(name)?.[0]?.trim()
    return v === '' ? undefined : v
  }
}

/** Parses the form; calls `onContent` when the "content" part starts, with the fields seen so far
 *  (clients send the metadata fields first). Whatever `onContent` does not read is drained, so
 *  the client always receives the answer rather than a reset connection. */
export async function readUploadForm<T> (
  ctx: Context,
  onContent: (fields: UploadFields, filename: string, stream: Readable) => Promise<T>
): Promise<{ fields: UploadFields, content: T }> {
  let form: busboy.Busboy
  try {
    form = busboy({
      headers: ctx.req.headers,
      limits: { fieldSize: MAX_FIELD_BYTES, fields: MAX_FIELDS, files: 2, parts: MAX_FIELDS + 2 }
    })
  } catch (err) {
    throw badRequest(`expected a multipart/form-data body: ${(err as Error).message}`)
  }
  const fields = new UploadFields()
  let content: Promise<T> | undefined
  let refusal: RegistryError | undefined
  const refuse = (err: unknown) => {
    refusal ??= err instanceof RegistryError ? err : badRequest((err as Error).message)
  }
  let formBytes = 0

  form.on('field', (name, value, info) => {
    if (info.nameTruncated || info.valueTruncated) { refuse(tooLarge(`form field "${name}" exceeds ${MAX_FIELD_BYTES} bytes`)); return }
    formBytes += name.length + value.length
    if (formBytes > MAX_FORM_BYTES) { refuse(tooLarge(`form fields exceed ${MAX_FORM_BYTES} bytes`)); return }
    fields.add(name, value)
  })
  form.on('file', (name, stream, info) => {
    // A body that ends early or a client that goes away errors every open part. Parts nobody
    // consumes (refused, ignored) still need a listener, or the error kills the process; the
    // failure itself reaches us through the pipeline below (and the consumer, if any).
    stream.on('error', () => {})
    // Signatures were dropped by PyPI in 2023 (twine --sign still sends them): ignore them.
    if (name === 'gpg_signature') { stream.resume(); return }
    if (name !== 'content') refuse(badRequest(`unexpected file part "${name}"; the distribution goes in "content"`))
    else if (content != null) refuse(badRequest('more than one "content" part'))
    if (refusal != null) { stream.resume(); return }
    content = onContent(fields, info.filename ?? '', stream)
    // Drain what the consumer left unread (it failed), so parsing reaches the end of the body.
    content.catch(() => { stream.resume() })
  })
  form.on('partsLimit', () => { refuse(badRequest(`more than ${MAX_FIELDS + 2} form parts`)) })
  form.on('fieldsLimit', () => { refuse(badRequest(`more than ${MAX_FIELDS} form fields`)) })
  form.on('filesLimit', () => { refuse(badRequest('too many file parts')) })

  try {
    await pipeline(requestBody(ctx), form)
  } catch (err) {
    if (ctx.req.destroyed && !ctx.req.complete) throw err // the client went away
    throw badRequest(`malformed multipart body: ${(err as Error).message}`)
  }
  if (refusal != null) throw refusal
  if (content == null) throw badRequest('the upload has no "content" file part')
  return { fields, content: await content }
}
