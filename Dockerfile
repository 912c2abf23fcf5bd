# The binderguard image, for people who build with Docker:
#
#   docker build -t REGISTRY/binderguard:TAG .
#
# Equivalent to bin/images/binderguard.tar from `make images`
# (test/images/build.sh): the same static binary built with the same flags
# at /usr/local/bin/binderguard, the same /etc/passwd and /etc/group, PATH
# set, uid 65532, no shell. Keep the two in step. This file is not built by
# the repository's tests (their machines have no Docker engine), and its
# digest differs from make images' (Docker records its own timestamps and
# history).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o /out/binderguard ./cmd/binderguard

FROM scratch
COPY test/images/etc/passwd test/images/etc/group /etc/
COPY --from=build /out/binderguard /usr/local/bin/binderguard
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/binderguard"]
