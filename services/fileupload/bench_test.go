package fileupload

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
	"github.com/kantofw/kanto/services/fileupload/providers/azureup"
	"github.com/kantofw/kanto/services/fileupload/providers/httpup"
	"github.com/kantofw/kanto/services/fileupload/providers/s3up"
	"github.com/kantofw/kanto/services/fileupload/storagetest"
)

// benchSize is the file uploaded per iteration.
const benchSize = 64 << 20

// BenchmarkUpload compares our uploaders with each server's reference client sending the same file:
// a plain http PUT, the SDK's plain PutObject, and the Azure SDK's
// UploadFile. bench/fileupload.sh prints the ratios.
func BenchmarkUpload(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.bin")
	storagetest.WriteRandom(b, path, benchSize)
	open := func(b *testing.B) *files.File {
		f, err := files.Open(files.Policy{Glob: filepath.Join(filepath.Dir(path), "*"), Mode: files.Strict}, path, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	ctx := context.Background()
	// kanto sends no checksum, like the reference clients; kanto-md5 adds
	// Content-MD5 as a device with checksum=true does.
	variants := map[string]bool{"kanto": false, "kanto-md5": true}
	run := func(b *testing.B, upload func(b *testing.B)) {
		b.SetBytes(benchSize)
		b.ResetTimer()
		for range b.N {
			upload(b)
		}
	}

	b.Run("http", func(b *testing.B) {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusCreated)
		}))
		defer hs.Close()
		for name, sum := range variants {
			b.Run(name, func(b *testing.B) {
				u, err := httpup.New(providers.Options{httpup.KeyURL: hs.URL + "/f"}, httpup.Config{Checksum: sum})
				if err != nil {
					b.Fatal(err)
				}
				run(b, func(b *testing.B) {
					f := open(b)
					defer f.Close()
					if err := u.Upload(ctx, f, nil); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
		b.Run("reference", func(b *testing.B) {
			run(b, func(b *testing.B) {
				f, _ := os.Open(path)
				defer f.Close()
				req, _ := http.NewRequest(http.MethodPut, hs.URL+"/f", f)
				req.ContentLength = benchSize
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			})
		})
	})

	b.Run("s3", func(b *testing.B) {
		s := storagetest.StartS3(b, "bench")
		for name, sum := range variants {
			b.Run(name, func(b *testing.B) {
				u, err := s3up.New(providers.Options{s3up.KeyRegion: s.Region, s3up.KeyAccessKey: s.AccessKey, s3up.KeySecret: s.SecretKey,
					s3up.KeyBucket: "bench", s3up.KeyObject: "kanto", s3up.KeyEndpoint: s.Endpoint}, s3up.Config{Checksum: sum})
				if err != nil {
					b.Fatal(err)
				}
				run(b, func(b *testing.B) {
					f := open(b)
					defer f.Close()
					if err := u.Upload(ctx, f, nil); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
		b.Run("reference", func(b *testing.B) {
			c := s3.New(s3.Options{Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
				Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")})
			run(b, func(b *testing.B) {
				f, _ := os.Open(path)
				defer f.Close()
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String("reference"), Body: f}); err != nil {
					b.Fatal(err)
				}
			})
		})
	})

	b.Run("azure", func(b *testing.B) {
		a := storagetest.StartAzure(b, "bench")
		sas := a.SAS(b, "bench", storagetest.AzureKey)
		for name, sum := range variants {
			b.Run(name, func(b *testing.B) {
				u, err := azureup.New(providers.Options{azureup.KeyEndpoint: a.Endpoint, azureup.KeySAS: sas, azureup.KeyContainer: "bench"},
					azureup.Config{Checksum: sum})
				if err != nil {
					b.Fatal(err)
				}
				run(b, func(b *testing.B) {
					f := open(b)
					defer f.Close()
					if err := u.Upload(ctx, f, nil); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
		b.Run("reference", func(b *testing.B) {
			c, err := blockblob.NewClientWithNoCredential(a.Endpoint+"bench/reference?"+sas, nil)
			if err != nil {
				b.Fatal(err)
			}
			run(b, func(b *testing.B) {
				f, _ := os.Open(path)
				defer f.Close()
				if _, err := c.UploadFile(ctx, f, nil); err != nil {
					b.Fatal(err)
				}
			})
		})
	})
}
