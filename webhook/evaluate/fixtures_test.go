package evaluate

import (
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakePolicies bans repositories by a crude canonical form; the real
// normalisation is tested in policies/spec and through the snapshot adapter.
type fakePolicies struct {
	bans  map[string]Ban // canonical repo -> ban
	build BuildPolicy
}

func canon(u string) (string, error) {
	if strings.Contains(u, " ") || u == "garbage" {
		return "", errors.New("not a repository URL")
	}
	u = strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(u, "/"), ".git"))
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	return u, nil
}

func (p fakePolicies) BanURL(u string) (Ban, bool, error) {
	c, err := canon(u)
	if err != nil {
		return Ban{}, false, err
	}
	b, ok := p.bans[c]
	return b, ok, nil
}

func (p fakePolicies) BanRequest(r string) (Ban, bool, error) {
	parts := strings.Split(r, "/")
	if len(parts) < 5 || parts[0] != "v2" || parts[1] != "gh" {
		return Ban{}, false, errors.New("not a request")
	}
	return p.BanURL("github.com/" + parts[2] + "/" + parts[3])
}

func (p fakePolicies) BuildFor(string) BuildPolicy { return p.build }

func ban(repo string, mode Mode) map[string]Ban {
	return map[string]Ban{repo: {Policy: "RepoBan/binder/crypto", Rule: repo, Message: "mining", Mode: mode, Repo: repo}}
}

func q(s string) resource.Quantity { return resource.MustParse(s) }

func i64(v int64) *int64 { return &v }

var stdBuild = BuildPolicy{
	Policy: "LaunchPolicy/binder/builds", Mode: ModeEnforce,
	Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{"cpu": q("1"), "memory": q("2G"), "ephemeral-storage": q("2G")},
		Requests: corev1.ResourceList{"cpu": q("250m"), "memory": q("1G")},
	},
	ActiveDeadlineSeconds: i64(3600),
}

// podBuilder makes fixture pods with chained changes.
type podBuilder struct{ p *corev1.Pod }

func buildPod(repo string) podBuilder {
	return podBuilder{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "build-x", Namespace: "binder",
			Labels:      map[string]string{"component": "binderhub-build", "name": "build-x"},
			Annotations: map[string]string{"binder-repo": repo},
		},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "builder", Image: "quay.io/jupyterhub/repo2docker:2024",
				Args: []string{"jupyter-repo2docker", "--ref=abc123", "--image=r/x:abc123", "--no-run", repo},
			}},
		},
	}}
}

func userPod(env ...string) podBuilder {
	c := corev1.Container{Name: "notebook", Image: "r/x:abc"}
	for i := 0; i+1 < len(env); i += 2 {
		c.Env = append(c.Env, corev1.EnvVar{Name: env[i], Value: env[i+1]})
	}
	return podBuilder{&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "jupyter-x", Namespace: "binder",
			Labels: map[string]string{"component": "singleuser-server", "app": "jupyterhub"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{c}},
	}}
}

func (b podBuilder) annotation(k, v string) podBuilder {
	if v == "" {
		delete(b.p.Annotations, k)
	} else {
		b.p.Annotations[k] = v
	}
	return b
}

func (b podBuilder) limits(l corev1.ResourceList) podBuilder {
	b.p.Spec.Containers[0].Resources.Limits = l
	return b
}

func (b podBuilder) requests(l corev1.ResourceList) podBuilder {
	b.p.Spec.Containers[0].Resources.Requests = l
	return b
}

func (b podBuilder) deadline(d int64) podBuilder {
	b.p.Spec.ActiveDeadlineSeconds = &d
	return b
}

func (b podBuilder) label(k, v string) podBuilder {
	b.p.Labels[k] = v
	return b
}

func (b podBuilder) pod() *corev1.Pod { return b.p }
