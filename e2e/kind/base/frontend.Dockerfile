# Stand-in for docker/dockerfile:1, BuildKit's Dockerfile frontend, which a
# `# syntax=docker/dockerfile:1` line makes BuildKit fetch (built by
# images.sh only where the registry cannot be reached): the frontend built
# from github.com/moby/buildkit, with the labels of the real image.
FROM scratch
COPY dockerfile-frontend /bin/dockerfile-frontend
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts,moby.buildkit.frontend.gitquerystring,moby.buildkit.frontend.contexts.zstd"
ENTRYPOINT ["/bin/dockerfile-frontend"]
