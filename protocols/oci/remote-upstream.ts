// Where a remote OCI repository asks: the upstream registry's /v2/ API below its root URL, under
// the image's upstream name, with the token scope the registry's token flow grants.
import type { FormatContext } from '../format.ts'
import type { RemoteRepository, UpstreamOptions } from '../shared/remote/remote-repository.ts'

/** The upstream path of a request path below the repository ("<name>/manifests/<ref>"). */
export const upstreamPath = (path: string): string => `v2/${path.replace(/^\/+/, '')}`

/** The image name asked upstream (and cached under): Docker Hub's official images live under
 *  `library/`, so with dockerHubLibrary "alpine" is "library/alpine". */
export function upstreamName (fc: FormatContext, name: string): string {
  return fc.repo.dockerHubLibrary === true && !name.includes('/') ? `library/${name}` : name
}

/** An upstream request of an image: the registry token flow asks for a pull of that image. */
export const pullOf = (name: string): UpstreamOptions => ({ tokenScope: `repository:${name}:pull` })

export function upstreamUrl (remote: RemoteRepository, name: string, rest: string): URL {
  return remote.client.urlOf(upstreamPath(`${name}/${rest}`))
}
